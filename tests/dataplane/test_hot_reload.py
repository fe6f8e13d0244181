"""Hot reload of the config file: applied without dropping in-flight requests
or keep-alive connections; invalid changes are rejected and counted."""

from __future__ import annotations

import http.client
import threading
import time

import httpx

from tests.support.harness import gateway_config, route, wait_for, with_routes


def versioned_routes(up, version: str, extra: list[dict] | None = None) -> list[dict]:
    return (extra or []) + [
        route("main", [up.host], policies={"responseHeaderModifier": {"set": {"x-cfg-version": version}}})
    ]


class LoadThread(threading.Thread):
    """Continuous keep-alive GETs on ONE connection; records every outcome."""

    def __init__(self, port: int, max_requests: int = 1_000_000, max_seconds: float = 40.0):
        super().__init__(daemon=True)
        self.port = port
        self.max_requests = max_requests
        self.max_seconds = max_seconds
        self.stop_event = threading.Event()
        self.versions: list[str] = []
        self.failures: list[str] = []
        self.local_ports: set[int] = set()
        self.count = 0

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        deadline = time.monotonic() + self.max_seconds
        try:
            while not self.stop_event.is_set() and self.count < self.max_requests and time.monotonic() < deadline:
                try:
                    conn.request("GET", "/echo/load")
                    resp = conn.getresponse()
                    resp.read()
                    self.local_ports.add(conn.sock.getsockname()[1] if conn.sock else -1)
                    if resp.status != 200:
                        self.failures.append(f"status {resp.status}")
                    self.versions.append(resp.getheader("x-cfg-version") or "")
                except Exception as exc:  # noqa: BLE001 - every failure is recorded
                    self.failures.append(repr(exc))
                    conn.close()
                self.count += 1
        finally:
            conn.close()

    def latest(self) -> str | None:
        return self.versions[-1] if self.versions else None


def test_reload_under_load(harness):
    up = harness.upstream("reload")
    cfg = gateway_config(versioned_routes(up, "v1"))
    gw = harness.gateway(cfg)
    assert httpx.get(gw.url + "/echo/x").headers["x-cfg-version"] == "v1"

    load = LoadThread(gw.port)
    load.start()
    wait_for(lambda: load.count > 20, 5, message="load thread running")

    slow_result: dict = {}

    def slow():
        try:
            r = httpx.get(gw.url + "/slow?delay=2", timeout=10)
            slow_result["status"] = r.status_code
            slow_result["body"] = r.json()
        except Exception as exc:  # noqa: BLE001
            slow_result["error"] = repr(exc)

    slow_thread = threading.Thread(target=slow, daemon=True)
    slow_thread.start()
    time.sleep(0.2)  # the slow request is in flight during the first reload

    for version in ("v2", "v3", "v4"):
        extra = (
            [
                route(
                    "added",
                    [],
                    prefix="/added",
                    policies={"directResponse": {"body": f"added-{version}", "status": 200}},
                )
            ]
            if version != "v2"
            else None
        )
        gw.reload(with_routes(cfg, versioned_routes(up, version, extra)))
        wait_for(
            lambda: httpx.get(gw.url + "/echo/x").headers.get("x-cfg-version") == version,
            5,
            message=f"new connections to see {version}",
        )
        if extra:
            assert httpx.get(gw.url + "/added").text == f"added-{version}"

    wait_for(lambda: load.latest() == "v4", 5, message="the keep-alive connection to see v4")
    time.sleep(0.3)
    load.stop_event.set()
    load.join(15)
    slow_thread.join(15)

    assert load.failures == [], f"{len(load.failures)} failures during reload: {load.failures[:5]}"
    assert load.count > 50
    assert len(load.local_ports) == 1, "the keep-alive connection was dropped/reopened"
    order = {"v1": 1, "v2": 2, "v3": 3, "v4": 4}
    seen = [order[v] for v in load.versions]
    assert seen == sorted(seen), "versions went backwards on the keep-alive connection"
    assert seen[0] == 1 and seen[-1] == 4
    assert slow_result.get("status") == 200, slow_result
    assert gw.metric("agentgw_config_reloads_total", result="ok") >= 3


def test_invalid_reload_keeps_old_config(harness):
    up = harness.upstream("reload-bad")
    cfg = gateway_config(versioned_routes(up, "good"))
    gw = harness.gateway(cfg)
    failed_before = gw.metric("agentgw_config_reloads_total", result="failed") or 0

    bad = with_routes(cfg, versioned_routes(up, "bad"))
    bad["binds"][0]["listeners"][0]["routes"][0]["policies"]["timeout"] = {"requestTimeout": "banana"}
    assert gw.reload(bad, expect="failed") == "failed"

    r = httpx.get(gw.url + "/echo/x")
    assert r.status_code == 200 and r.headers["x-cfg-version"] == "good"
    assert (gw.metric("agentgw_config_reloads_total", result="failed") or 0) == failed_before + 1
    logs = gw.stdout_text() + gw.stderr_text()
    assert "requestTimeout" in logs, f"the rejected field is not named in the logs:\n{gw.logs()}"

    # broken YAML is rejected too
    gw.reload("binds: [ {port: : ::\n", expect="failed")
    assert httpx.get(gw.url + "/echo/x").headers["x-cfg-version"] == "good"

    # and a later valid change still applies
    gw.reload(with_routes(cfg, versioned_routes(up, "fixed")))
    wait_for(
        lambda: httpx.get(gw.url + "/echo/x").headers.get("x-cfg-version") == "fixed", 5, message="fixed config applied"
    )
    assert (gw.metric("agentgw_config_reloads_total", result="failed") or 0) == failed_before + 2


def test_reload_can_remove_a_route(harness):
    up = harness.upstream("reload-rm")
    routes = [route("gone-soon", [], prefix="/gone", policies={"directResponse": {"body": "here", "status": 200}})]
    cfg = gateway_config(routes + versioned_routes(up, "v1"))
    gw = harness.gateway(cfg)
    assert httpx.get(gw.url + "/gone").text == "here"
    gw.reload(with_routes(cfg, versioned_routes(up, "v2")))
    wait_for(
        lambda: httpx.get(gw.url + "/gone").headers.get("x-upstream-name") == "reload-rm",
        5,
        message="removed route no longer answering",
    )
