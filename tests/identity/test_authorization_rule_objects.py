"""``authorization.rules`` as agentgateway writes them: objects ``{allow}``, ``{deny}`` and
``{require}`` beside plain CEL strings, enforced by a real gateway."""

from __future__ import annotations

import httpx
import yaml

from tests.support.harness import gateway_config, route, run_cli


def test_allow_deny_and_require_objects(harness, upstream):
    rules = [
        'request.headers["x-team"] == "blue"',
        {"allow": 'request.headers["x-team"] == "green"'},
        {"deny": 'request.path.startsWith("/blocked")'},
        {"require": 'request.method != "DELETE"'},
    ]
    gw = harness.gateway(gateway_config([route("r", [upstream.host], policies={"authorization": {"rules": rules}})]))

    def status(path: str, team: str | None, method: str = "GET") -> int:
        headers = {"x-team": team} if team else {}
        return httpx.request(method, gw.url + path, headers=headers).status_code

    assert status("/a", "blue") == 200  # a string rule allows
    assert status("/a", "green") == 200  # an {allow} object allows
    assert status("/a", "red") == 403  # no allow rule matches
    assert status("/blocked/x", "blue") == 403  # {deny} wins over an allow
    assert status("/a", "blue", "DELETE") == 403  # {require} must hold


def test_a_bad_rule_object_is_refused_at_its_path(tmp_path):
    cfg = gateway_config([route("r", ["127.0.0.1:1"], policies={"authorization": {"rules": [{"deny": "request.("}]}})])
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    r = run_cli("validate", "-f", str(path))
    assert r.returncode != 0 and "policies.authorization.rules[0].deny: invalid CEL expression" in r.stdout + r.stderr
    cfg["binds"][0]["listeners"][0]["routes"][0]["policies"]["authorization"]["rules"] = [
        {"allow": "true", "deny": "false"}
    ]
    path.write_text(yaml.safe_dump(cfg))
    r = run_cli("validate", "-f", str(path))
    assert r.returncode != 0 and "exactly one of allow, deny, require" in r.stdout + r.stderr
