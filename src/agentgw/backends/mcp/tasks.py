"""MCP tasks (protocol 2025-11-25) through a federated session.

A task-augmented ``tools/call`` answers with a task id that the client later passes to
``tasks/get``, ``tasks/result`` and ``tasks/cancel``, and that the server repeats in
``notifications/tasks/status`` and in the ``related-task`` ``_meta`` of what it sends
while the task runs. With several targets the ids of two servers may collide and the
gateway must know which server a later call belongs to, so ids are made the gateway's
own as agentgateway makes them, ``<target>+<id>``, as resource URIs are. ``tasks/list``
fans out and merges. With one target (and not ``prefixMode: always``) nothing is
rewritten: the ids pass through as the server wrote them.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from .jsonrpc import INVALID_PARAMS, METHOD_NOT_FOUND, RpcError

if TYPE_CHECKING:
    from .session import ClientCall, GatewaySession

#: the ``_meta`` key that ties a message to the task it belongs to
RELATED = "io.modelcontextprotocol/related-task"
#: methods that name one task by ``params.taskId``
BY_ID = frozenset({"tasks/get", "tasks/result", "tasks/cancel"})
MAX_PAGES = 32


class TaskRouting:
    def __init__(self, prefix: bool, targets: list[str]):
        self.targets = targets
        #: ids pass through untouched (one target, not ``prefixMode: always``)
        self.identity = not prefix

    # -- ids -------------------------------------------------------------------------------
    def public(self, target: str, tid: str) -> str:
        """The id the client sees for ``target``'s task ``tid``."""
        return tid if self.identity else f"{target}+{tid}"

    def route(self, tid: str) -> tuple[str, str]:
        """A client's task id → (target, the target's own id)."""
        if self.identity:
            return self.targets[0], tid
        t, sep, own = tid.partition("+")  # target names hold no "+"
        if not sep or t not in self.targets:
            raise RpcError(INVALID_PARAMS, f"unknown task {tid!r}: expected <target>+<id>")
        return t, own

    # -- rewriting ---------------------------------------------------------------------------
    def result(self, target: str, res):
        """A target's answer with its task ids made public: a ``Task`` (tasks/get, cancel),
        a ``CreateTaskResult`` (``{task: Task}``), or any result whose ``_meta`` names
        its task (tasks/result)."""
        if self.identity or not isinstance(res, dict):
            return res
        if isinstance(res.get("taskId"), str):
            res = dict(res, taskId=self.public(target, res["taskId"]))
        task = res.get("task")
        if isinstance(task, dict) and isinstance(task.get("taskId"), str):
            res = dict(res, task=dict(task, taskId=self.public(target, task["taskId"])))
        return self._meta(target, res)

    def outgoing(self, target: str, msg: dict) -> dict:
        """A message from ``target`` to the client (status notification, a request or
        notification made on behalf of a task) with its task id made public."""
        if self.identity:
            return msg
        params = msg.get("params")
        if not isinstance(params, dict):
            return msg
        if msg.get("method") == "notifications/tasks/status" and isinstance(params.get("taskId"), str):
            params = dict(params, taskId=self.public(target, params["taskId"]))
        params = self._meta(target, params)
        return msg if params is msg["params"] else dict(msg, params=params)

    def _meta(self, target: str, obj: dict) -> dict:
        meta = obj.get("_meta")
        if not isinstance(meta, dict):
            return obj
        rel = meta.get(RELATED)
        if not isinstance(rel, dict) or not isinstance(rel.get("taskId"), str):
            return obj
        rel = dict(rel, taskId=self.public(target, rel["taskId"]))
        return dict(obj, _meta=dict(meta, **{RELATED: rel}))

    # -- tasks/list ----------------------------------------------------------------------------
    async def list(self, session: GatewaySession, params: dict, call: ClientCall, timeout) -> dict:
        """Every target's tasks on one page (a cursor is one the gateway never issued)."""
        if params.get("cursor"):
            return {"tasks": []}
        names = list(session.upstreams)

        async def pages(name: str) -> list:
            u = session.upstreams[name]
            out: list = []
            cursor = None
            for _ in range(MAX_PAGES):
                res = await u.request("tasks/list", {"cursor": cursor} if cursor else None, call, timeout)
                out.extend((res or {}).get("tasks") or [])
                cursor = (res or {}).get("nextCursor")
                if not cursor:
                    break
            return out

        results = await asyncio.gather(*(pages(n) for n in names), return_exceptions=True)
        tasks: list = []
        for name, res in zip(names, results):
            if isinstance(res, RpcError) and res.code == METHOD_NOT_FOUND:
                continue  # a target without tasks
            if isinstance(res, BaseException):
                raise res
            tasks.extend(self.result(name, t) if isinstance(t, dict) else t for t in res)
        return {"tasks": tasks}
