"""The command line: ``validate`` and ``--version``."""

from __future__ import annotations

import re

import yaml

from tests.support.harness import gateway_config, route, run_cli


def test_version():
    r = run_cli("--version")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "agentgw 0.1.0"


def test_validate_valid_config(tmp_path):
    cfg = gateway_config([route("r1", ["127.0.0.1:8080"], prefix="/api")])
    path = tmp_path / "ok.yaml"
    path.write_text(yaml.safe_dump(cfg))
    r = run_cli("validate", "-f", str(path))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Traceback" not in r.stdout + r.stderr


def _error_lines(r, path) -> list[str]:
    """The error lines, each ``<file>:<line>:<column>: <path>: <message>``, without the place."""
    lines = [line for line in (r.stdout + r.stderr).splitlines() if line.strip()]
    place = re.compile(re.escape(str(path)) + r":\d+:\d+: ")
    assert all(place.match(line) for line in lines), lines
    return [place.sub("", line, count=1) for line in lines]


def test_validate_names_exact_paths(tmp_path):
    routes = [
        route("r0", ["127.0.0.1:8080"], prefix="/a"),
        route("r1", ["127.0.0.1:8080"], prefix="/b"),
        route("r2", ["127.0.0.1:8080"], prefix="/c", policies={"timeout": {"requestTimeout": "banana"}}),
    ]
    routes[2]["backends"].append({"host": "127.0.0.1:8080", "weight": "heavy"})
    cfg = gateway_config(routes)
    cfg["binds"][0]["port"] = "not-a-port"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    r = run_cli("validate", "-f", str(path))
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert "Traceback" not in out
    lines = _error_lines(r, path)
    expected = [
        "binds[0].port",
        "binds[0].listeners[0].routes[2].policies.timeout.requestTimeout",
        "binds[0].listeners[0].routes[2].backends[1].weight",
    ]
    for p in expected:
        assert any(re.match(re.escape(p) + r"\s*:", line.strip()) for line in lines), f"no line '{p}: ...' in:\n{out}"
    # one error per line, each line "path: message"
    error_lines = [line for line in lines if re.match(r"^[A-Za-z_][\w.\[\]]*\s*:\s*\S", line.strip())]
    assert len(error_lines) >= len(expected)


def test_validate_unknown_field(tmp_path):
    cfg = gateway_config([route("r1", ["127.0.0.1:8080"])])
    cfg["binds"][0]["listeners"][0]["routes"][0]["policies"] = {"notAPolicy": {"x": 1}}
    path = tmp_path / "unknown.yaml"
    path.write_text(yaml.safe_dump(cfg))
    r = run_cli("validate", "-f", str(path))
    assert r.returncode != 0
    assert any(
        line.strip().startswith("binds[0].listeners[0].routes[0].policies") and "notAPolicy" in line
        for line in _error_lines(r, path)
    ), r.stdout + r.stderr


def test_validate_yaml_syntax_error(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("binds: [ {port: : \n")
    r = run_cli("validate", "-f", str(path))
    assert r.returncode != 0
    assert "Traceback" not in r.stdout + r.stderr
    assert (r.stdout + r.stderr).strip()


def test_validate_missing_file(tmp_path):
    r = run_cli("validate", "-f", str(tmp_path / "nope.yaml"))
    assert r.returncode != 0
    assert "Traceback" not in r.stdout + r.stderr


def test_run_with_invalid_config_exits_nonzero(tmp_path):
    cfg = gateway_config([route("r1", ["127.0.0.1:8080"])])
    cfg["binds"][0]["port"] = "not-a-port"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    r = run_cli("run", "-f", str(path), timeout=20)
    assert r.returncode != 0
    assert "binds[0].port" in r.stdout + r.stderr
    assert "Traceback" not in r.stdout + r.stderr
