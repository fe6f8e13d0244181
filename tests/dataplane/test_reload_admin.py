"""Hot reload of the process addresses: ``config.adminAddr``, ``statsAddr`` and
``readinessAddr`` move (new ones open before the switch, old ones close after it, a
taken one fails the reload); what only a restart can change -- ``enableIpv6``, an admin
address with ``--workers``, an admin address moving to another host on its port -- fails
the reload with a log line saying so."""

from __future__ import annotations

import copy
import socket

import httpx
import pytest

from tests.support.harness import _http_get, free_port, gateway_config, metric_sum, parse_metrics, route, wait_for


def _serves(addr: tuple[str, int], path: str = "/healthz/ready") -> bool:
    try:
        return _http_get(*addr, path, timeout=1.0)[0] == 200
    except OSError:
        return False


def _refused(addr: tuple[str, int]) -> bool:
    try:
        socket.create_connection(addr, timeout=0.5).close()
        return False
    except OSError:
        return True


def test_admin_addresses_move_on_reload(harness):
    up = harness.upstream("admin-move")
    cfg = gateway_config([route("r", [up.host])])
    gw = harness.gateway(cfg)
    old = [gw.admin_addr, gw.stats_addr, gw.readiness_addr]
    admin, stats = ("127.0.0.1", free_port()), ("127.0.0.1", free_port())
    new = copy.deepcopy(cfg)
    new["config"].update(adminAddr=f"{admin[0]}:{admin[1]}", statsAddr=f"{stats[0]}:{stats[1]}", readinessAddr="off")
    gw.write_config(new)

    wait_for(lambda: _serves(stats, "/metrics"), 10.0, message="the new stats address")
    samples = parse_metrics(_http_get(*stats, "/metrics")[1].decode())
    assert metric_sum(samples, "agentgw_config_reloads_total", result="ok") == 2
    assert _http_get(*admin, "/config_dump")[0] == 200
    for addr in old:
        assert wait_for(lambda a=addr: _refused(a), 3.0, message=f"{addr} closing")
    assert httpx.get(gw.url + "/x", timeout=5).status_code == 200
    assert "admin endpoints: config.adminAddr=" in gw.logs()

    # and back to the first addresses
    gw.write_config(cfg)
    wait_for(lambda: _serves(gw.readiness_addr), 10.0, message="readiness back")
    assert _serves(gw.stats_addr, "/metrics") and _serves(gw.admin_addr, "/config_dump")
    assert wait_for(lambda: _refused(admin) and _refused(stats), 3.0, message="the moved addresses closing")
    assert gw.metric("agentgw_config_reloads_total", result="ok") == 3


def test_admin_address_taken_fails_the_reload(harness):
    up = harness.upstream("admin-taken")
    cfg = gateway_config([route("r", [up.host])])
    gw = harness.gateway(cfg)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        new = copy.deepcopy(cfg)
        new["config"]["adminAddr"] = f"127.0.0.1:{port}"
        new["binds"][0]["listeners"][0]["routes"][0]["name"] = "renamed"
        assert gw.reload(new, expect="failed") == "failed"
        line = f"config.adminAddr: port {port} is already in use by another process (127.0.0.1:{port})"
        assert line in gw.logs()
    # the running config is untouched: old admin address, old route
    assert _serves(gw.admin_addr, "/config_dump")
    assert gw.config_dump()["binds"][0]["listeners"][0]["routes"][0]["name"] == "r"


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda c: c["config"].update(enableIpv6=True), "changing config.enableIpv6 needs a restart"),
        (
            lambda c: c["config"].update(adminAddr="0.0.0.0:" + c["config"]["adminAddr"].rsplit(":", 1)[1]),
            "changing config.adminAddr from 127.0.0.1:{p} to 0.0.0.0:{p} (the same port) needs a restart",
        ),
    ],
    ids=["enableIpv6", "same-port"],
)
def test_changes_only_a_restart_applies_fail_the_reload(harness, change, message):
    up = harness.upstream("restart-only")
    cfg = gateway_config([route("r", [up.host])])
    gw = harness.gateway(cfg)
    new = copy.deepcopy(cfg)
    change(new)
    assert gw.reload(new, expect="failed") == "failed"
    assert "config reload failed; keeping the running config: " + message.format(p=gw.admin_addr[1]) in gw.logs()
    assert _serves(gw.admin_addr, "/config_dump")
    assert httpx.get(gw.url + "/x", timeout=5).status_code == 200


def test_admin_address_change_with_workers_needs_a_restart(harness):
    up = harness.upstream("admin-workers")
    cfg = gateway_config([route("r", [up.host])])
    gw = harness.gateway(cfg, workers=2)
    new = copy.deepcopy(cfg)
    new["config"]["adminAddr"] = f"127.0.0.1:{free_port()}"
    assert gw.reload(new, expect="failed") == "failed"
    wait_for(
        lambda: gw.logs().count("changing config.adminAddr needs a restart with --workers") == 2,
        5.0,
        message="both workers refusing the reload",
    )
    assert _serves(gw.admin_addr, "/config_dump")
