"""Route delegation (``routeGroups`` and ``routeGroup`` backends, as agentgateway's
config has them), through a real gateway: the group's best route is chosen at request
time, inherits the delegating route's policies unless it sets its own of the same kind,
and is the route logs and metrics name; a request no route of the group matches is a
404; cycles, unknown groups and a routeGroup beside other backends are refused at load."""

from __future__ import annotations

import httpx
import pytest
import yaml

from tests.support.harness import gateway_config, run_cli


def _headers(resp: httpx.Response) -> dict[str, str]:
    return {k.lower(): v for k, v in resp.json()["headers"]}


@pytest.fixture
def gw(harness, upstream):
    cfg = gateway_config([])
    cfg["binds"][0]["listeners"][0]["routes"] = [
        {
            "name": "api",
            "matches": [{"path": {"pathPrefix": "/api"}}],
            "policies": {
                "requestHeaderModifier": {"add": {"x-from": "api"}},
                "apiKey": {"mode": "strict", "keys": [{"key": "k-123"}]},
            },
            "backends": [{"routeGroup": "api-v"}],
        },
        {"name": "rest", "matches": [{"path": {"pathPrefix": "/"}}], "backends": [{"host": upstream.host}]},
    ]
    cfg["routeGroups"] = [
        {
            "name": "api-v",
            "routes": [
                {
                    "name": "v1",
                    "matches": [{"path": {"pathPrefix": "/api/v1"}}],
                    "policies": {
                        "requestHeaderModifier": {"add": {"x-from": "v1"}},
                        "urlRewrite": {"path": {"prefix": "/echo"}},
                    },
                    "backends": [{"host": upstream.host}],
                },
                {
                    "name": "v2",
                    "matches": [{"path": {"pathPrefix": "/api/v2"}, "method": "GET"}],
                    "backends": [{"routeGroup": "inner"}],
                },
            ],
        },
        {
            "name": "inner",
            "routes": [
                {
                    "name": "v2-open",
                    "matches": [{"path": {"pathPrefix": "/api/v2/open"}}],
                    "policies": {"apiKey": {"mode": "optional", "keys": [{"key": "k-123"}]}},
                    "backends": [{"host": upstream.host}],
                },
                {"name": "v2-hello", "policies": {"directResponse": {"status": 200, "body": "v2"}}},
            ],
        },
    ]
    return harness.gateway(cfg)


KEY = {"authorization": "Bearer k-123"}


def test_the_groups_route_serves_with_the_parents_policies(gw):
    # the parent's apiKey is inherited: no key, no entry
    assert httpx.get(gw.url + "/api/v1/x").status_code == 401
    r = httpx.get(gw.url + "/api/v1/x?q=1", headers=KEY)
    assert r.status_code == 200, r.text
    seen = r.json()
    # v1's own requestHeaderModifier replaced the parent's; its urlRewrite read v1's match
    assert _headers(r)["x-from"] == "v1"
    assert seen["path"] == "/echo/x" and seen["query"] == "q=1"
    # a nested group: v2 -> inner; the parent's header policy inherited two levels down
    r = httpx.get(gw.url + "/api/v2/open/y", headers=KEY)
    assert r.status_code == 200 and _headers(r)["x-from"] == "api"
    # inner's own apiKey (optional) replaced the parent's strict one
    assert httpx.get(gw.url + "/api/v2/open/y").status_code == 200
    assert httpx.get(gw.url + "/api/v2/anything", headers=KEY).text == "v2"
    assert httpx.get(gw.url + "/api/v2/anything").status_code == 401


def test_no_route_of_the_group_is_a_404_before_any_policy(gw):
    r = httpx.get(gw.url + "/api/v3")  # the parent matches, no route of its group does
    assert r.status_code == 404 and "route group" in r.text
    r = httpx.post(gw.url + "/api/v2/anything", headers=KEY)  # v2 is GET only
    assert r.status_code == 404
    assert httpx.get(gw.url + "/elsewhere").status_code == 200  # the listener's other routes


def test_logs_and_metrics_name_the_groups_route(gw):
    httpx.get(gw.url + "/api/v1/logged", headers=KEY)
    e = gw.wait_access_log(lambda e: e.get("path", "").startswith("/api/v1/logged"))
    assert e["route"] == "v1" and e["status"] == 200
    httpx.get(gw.url + "/api/v2/anything", headers=KEY)
    e = gw.wait_access_log(lambda e: e.get("path") == "/api/v2/anything")
    assert e["route"] == "v2-hello"
    assert (gw.metric("agentgw_requests_total", route="v1") or 0) >= 1


@pytest.mark.parametrize(
    "groups, backends, message",
    [
        ([{"name": "a", "routes": [{"backends": [{"routeGroup": "a"}]}]}], [{"routeGroup": "a"}], "a cycle"),
        ([], [{"routeGroup": "missing"}], "no route group named 'missing'"),
        ([{"name": "a", "routes": []}], [{"routeGroup": "a"}, {"host": "127.0.0.1:1"}], "only backend of its route"),
        # both set authorization: the group's route would replace the parent's deny rules
        (
            [
                {
                    "name": "a",
                    "routes": [
                        {"policies": {"authorization": {"rules": ["true"]}}, "backends": [{"host": "127.0.0.1:1"}]}
                    ],
                }
            ],
            [{"routeGroup": "a"}],
            "deny and require rules lost",
        ),
    ],
)
def test_refused_at_load(tmp_path, groups, backends, message):
    cfg = gateway_config([])
    cfg["binds"][0]["listeners"][0]["routes"] = [
        {"name": "p", "backends": backends, "policies": {"authorization": {"deny": ["request.path == '/x'"]}}}
    ]
    cfg["routeGroups"] = groups
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    r = run_cli("validate", "-f", str(path))
    out = r.stdout + r.stderr
    assert r.returncode != 0 and message in out and "routeGroup" in out, out


def test_an_unreferenced_group_is_still_checked(tmp_path):
    cfg = gateway_config([])
    cfg["binds"][0]["listeners"][0]["routes"] = [{"name": "p", "backends": [{"host": "127.0.0.1:1"}]}]
    cfg["routeGroups"] = [{"name": "idle", "routes": [{"policies": {"timeout": {"requestTimeout": "-1s"}}}]}]
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    r = run_cli("validate", "-f", str(path))
    assert r.returncode != 0 and "routeGroups[0].routes[0].policies.timeout" in r.stdout + r.stderr
