"""``agentgw`` with a way to see what only the cyclic garbage collector can free.

    python -m tests.support.gc_probe run -f CONFIG

Runs the gateway as ``python -m agentgw`` does. On SIGUSR2 it runs a full collection
with ``gc.DEBUG_SAVEALL`` (unreachable objects are kept in ``gc.garbage`` instead of
freed), writes ``{type name: count}`` of them to ``gc_garbage.json`` in its working
directory, and empties ``gc.garbage`` again, so each dump covers what became cyclic
garbage since the previous one. Tests use it to check that a proxied request is freed
by reference counting: a reference cycle per request leaves the work to the collector,
whose passes then stall every connection of the process for tens of milliseconds.
It also counts the asyncio tasks the gateway's loop creates (``tasks.json``, written at
each dump), so a test can tell a request served without a task from one that was not.
"""

from __future__ import annotations

import collections
import gc
import json
import os
import signal
import sys
import types


TASKS = [0]  # asyncio tasks created in the gateway's loop so far


def dump(*_args) -> None:
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        # frames by function name: what a cycle through a traceback runs through
        counts = collections.Counter(
            f"frame {o.f_code.co_name}" if isinstance(o, types.FrameType) else type(o).__qualname__ for o in gc.garbage
        )
    finally:
        gc.garbage.clear()
        gc.set_debug(0)
    gc.collect()  # out of gc.garbage they are unreachable cycles again: free them for good
    tmp = "gc_garbage.json.tmp"
    with open("tasks.json", "w") as f:
        f.write(json.dumps(TASKS[0]))

    with open(tmp, "w") as f:
        f.write(json.dumps(counts))  # (json.dump's encoder makes a cycle of closures itself)
    os.replace(tmp, "gc_garbage.json")


def cyclic_garbage(gw) -> dict[str, int]:
    """Test side: what became cyclic garbage in ``gw`` (a harness ``Gateway`` started
    with ``command=PROBE``) since the previous call."""
    from tests.support.harness import wait_for

    out = gw.workdir / "gc_garbage.json"
    out.unlink(missing_ok=True)
    gw.proc.send_signal(signal.SIGUSR2)
    wait_for(out.exists, timeout=10, message="gc_garbage.json")
    return json.loads(out.read_text())


def tasks_created(gw) -> int:
    """Test side: how many asyncio tasks ``gw``'s event loop had created at the last
    ``cyclic_garbage`` call (a request served without one adds none)."""
    return json.loads((gw.workdir / "tasks.json").read_text())


PROBE = [sys.executable, "-m", "tests.support.gc_probe"]  # Gateway(command=PROBE)


def _counting_tasks(coro):
    """Run ``coro`` with a task factory that counts the tasks the loop creates."""
    import asyncio

    async def run():
        def factory(loop, c, **kw):
            TASKS[0] += 1
            return asyncio.Task(c, loop=loop, **kw)

        asyncio.get_running_loop().set_task_factory(factory)
        return await coro

    return run()


def main() -> None:
    signal.signal(signal.SIGUSR2, dump)
    import uvloop

    run = uvloop.run
    uvloop.run = lambda coro, **kw: run(_counting_tasks(coro), **kw)
    from agentgw.cli import main as agentgw_main

    sys.argv[0] = "agentgw"
    sys.exit(agentgw_main())


if __name__ == "__main__":
    main()
