"""The UI on a traffic listener (the config's ``ui:``, agentgateway's shape): served at
``/ui/`` of the attached gateway behind ``ui.policies``, with the admin API under
``/ui/api/v1/`` keeping its own rules -- and refused when nothing authenticates who
reaches it."""

from __future__ import annotations

import base64
import hashlib

import httpx
import yaml

from tests.support.harness import free_port, run_cli

TOKEN = "attached-ui-admin-token-0123456789"
ALICE = ("alice", "wonderland-42")
ADMIN = {"x-agentgw-admin-authorization": f"Bearer {TOKEN}"}


def _sha_line(user: str, password: str) -> str:  # htpasswd -s
    return f"{user}:{{SHA}}" + base64.b64encode(hashlib.sha1(password.encode()).digest()).decode()


def _config(admin: dict) -> dict:
    return {
        "config": {
            "adminAddr": f"127.0.0.1:{free_port()}",
            "statsAddr": f"127.0.0.1:{free_port()}",
            "readinessAddr": f"127.0.0.1:{free_port()}",
            "admin": admin,
        },
        "gateways": {"default": {"port": free_port()}},
        "routes": [
            {
                "name": "hello",
                "matches": [{"path": {"exact": "/hello"}}],
                "policies": {"directResponse": {"status": 200, "body": "hi"}},
            }
        ],
        "ui": {"policies": {"basicAuth": {"htpasswd": _sha_line(*ALICE), "mode": "strict"}}},
    }


def _port(gw) -> int:
    return int(gw.config["gateways"]["default"]["port"])


def test_the_ui_behind_the_routes_policies_and_the_apis_own_rules(harness):
    gw = harness.gateway(_config({"token": TOKEN}))
    base = f"http://127.0.0.1:{_port(gw)}"
    assert httpx.get(base + "/ui/").status_code == 401  # ui.policies: basicAuth
    page = httpx.get(base + "/ui/", auth=ALICE)
    assert page.status_code == 200 and '<script type="module" src="app.js">' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert httpx.get(base + "/ui/app.js", auth=ALICE).status_code == 200
    # behind the route, the admin API still wants its own credential (one is configured)
    assert httpx.get(base + "/ui/api/v1/topology", auth=ALICE).status_code == 401
    topo = httpx.get(base + "/ui/api/v1/topology", auth=ALICE, headers=ADMIN)
    assert topo.status_code == 200
    names = [r["name"] for b in topo.json()["binds"] for lst in b["listeners"] for r in lst["routes"]]
    assert names == ["hello", "ui"]
    # not reachable without the route's own policy either
    assert httpx.get(base + "/ui/api/v1/topology", headers=ADMIN).status_code == 401
    # the traffic of the route serves as usual
    assert httpx.get(base + "/hello").text == "hi"


def test_loopback_writes_do_not_reach_through_a_traffic_listener(harness):
    gw = harness.gateway(_config({"allowUnauthenticatedLoopbackWrites": True}))
    body = {"level": "debug"}
    via_route = httpx.put(f"http://127.0.0.1:{_port(gw)}/ui/api/v1/log-level", json=body, auth=ALICE)
    assert via_route.status_code == 403 and "disabled" in via_route.json()["error"]
    # reads there are the route's to guard (basicAuth here)
    assert httpx.get(f"http://127.0.0.1:{_port(gw)}/ui/api/v1/log-level", auth=ALICE).status_code == 200
    # on the admin address itself (loopback), the same write is allowed, as configured
    assert httpx.put(f"{gw.admin_url}/ui/api/v1/log-level", json=body).status_code == 200
    assert httpx.put(f"{gw.admin_url}/api/v1/log-level", json={"level": "info"}).status_code == 200


def test_an_unguarded_ui_on_a_traffic_listener_is_refused(tmp_path):
    cfg = _config({})
    del cfg["config"]["admin"]
    cfg["ui"] = {"gateways": ["default"]}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    r = run_cli("validate", "-f", str(path))
    assert r.returncode != 0 and "ui.policies" in r.stdout + r.stderr and "need authentication" in r.stdout + r.stderr
    # policies with nowhere to apply: refused too
    cfg = _config({})
    cfg["gateways"] = {"main": cfg["gateways"]["default"]}
    cfg["routes"][0]["gateways"] = ["main"]
    path.write_text(yaml.safe_dump(cfg))
    r = run_cli("validate", "-f", str(path))
    assert r.returncode != 0 and "ui.policies: apply to the UI on traffic listeners" in r.stdout + r.stderr
    # a policy that lets a request without a credential through guards nothing
    cfg = _config({})
    del cfg["config"]["admin"]
    cfg["ui"]["policies"] = {"apiKey": {"keys": [{"key": "k-123"}]}}  # mode: optional, the default
    path.write_text(yaml.safe_dump(cfg))
    r = run_cli("validate", "-f", str(path))
    assert r.returncode != 0 and "need authentication" in r.stdout + r.stderr
    cfg["ui"]["policies"]["apiKey"]["mode"] = "strict"
    path.write_text(yaml.safe_dump(cfg))
    assert run_cli("validate", "-f", str(path)).returncode == 0
    # a policy that would act on an upstream has none there: refused, not ignored
    cfg = _config({"token": TOKEN})
    cfg["ui"]["policies"]["timeout"] = {"requestTimeout": "5s"}
    path.write_text(yaml.safe_dump(cfg))
    r = run_cli("validate", "-f", str(path))
    out = r.stdout + r.stderr
    assert r.returncode != 0 and "ui.policies.timeout: not supported on the UI's route" in out, out


def test_the_page_works_in_a_browser_on_the_traffic_port(harness, browser):
    gw = harness.gateway(_config({"token": TOKEN}))
    context = browser.new_context(http_credentials={"username": ALICE[0], "password": ALICE[1]})
    try:
        pg = context.new_page()
        errors: list[str] = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.goto(f"http://127.0.0.1:{_port(gw)}/ui/#/overview")
        dialog = pg.get_by_role("dialog")
        dialog.get_by_label("Admin token").fill(TOKEN)
        dialog.get_by_role("button", name="Sign in").click()
        pg.get_by_role("button", name="Retry").or_(pg.get_by_text("hello", exact=True)).first.wait_for()
        if pg.get_by_role("button", name="Retry").count():
            pg.get_by_role("button", name="Retry").click()
        pg.get_by_text("hello", exact=True).first.wait_for()
        assert not errors, errors
    finally:
        context.close()
