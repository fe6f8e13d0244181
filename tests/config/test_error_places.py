"""Config errors placed in the file: ``<file>:<line>:<column>: <path>: <message>``, with a
did-you-mean hint for misspelled keys, the same from ``agentgw validate``, from ``agentgw
run`` refusing to start and from a refused hot reload; an empty file is an error."""

from __future__ import annotations

import textwrap

import httpx

from tests.support.harness import gateway_config, route, run_cli, wait_for

# Lines and columns below are those of these texts, as written (1-based).
SHAPE_ERRORS = textwrap.dedent(
    """\
    binds:
    - port: 3000
      listeners:
      - routes:
        - name: a
          policies:
            jwtAuth:
              issuer: https://issuer.example
              audience: [x]
              jwks: '{"keys": []}'
          backends:
          - host: "x:y"
    backend: []
    """
)
SHAPE_LINES = [
    "a.yaml:9:11: binds[0].listeners[0].routes[0].policies.jwtAuth.audience: unknown field; did you mean 'audiences'?",
    "a.yaml:12:9: binds[0].listeners[0].routes[0].backends[0].host: invalid host 'x:y': port must be 1-65535",
    "a.yaml:13:1: backend: unknown field; did you mean 'backends'?",
]

# Well-formed, but refused when compiled: a JWKS file that is not there, an unknown backend.
COMPILE_ERRORS = textwrap.dedent(
    """\
    binds:
    - port: 3000
      listeners:
      - routes:
        - policies:
            jwtAuth:
              issuer: https://issuer.example
              audiences: [x]
              jwks: {file: missing-jwks.json}
          backends:
          - backend: nope
    """
)


def lines(r) -> list[str]:
    return [line for line in r.stderr.splitlines() if line.strip()]


def test_validate_places_each_error_and_suggests_the_key_meant(tmp_path):
    (tmp_path / "a.yaml").write_text(SHAPE_ERRORS)
    r = run_cli("validate", "-f", "a.yaml", cwd=tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    assert sorted(lines(r)) == sorted(SHAPE_LINES), r.stderr


def test_errors_found_when_compiling_are_placed_too(tmp_path):
    (tmp_path / "b.yaml").write_text(COMPILE_ERRORS)
    r = run_cli("validate", "-f", "b.yaml", cwd=tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    missing = tmp_path / "missing-jwks.json"
    assert sorted(lines(r)) == [
        "b.yaml:11:9: binds[0].listeners[0].routes[0].backends[0].backend: no top-level backend named 'nope'",
        "b.yaml:9:11: binds[0].listeners[0].routes[0].policies.jwtAuth.jwks: cannot load JWKS: "
        f"{missing}: No such file or directory",
    ], r.stderr


def test_missing_keys_unset_variables_and_json_files(tmp_path):
    (tmp_path / "c.yaml").write_text("config:\n  session: {key: $AGENTGW_TEST_UNSET_VARIABLE}\n")
    (tmp_path / "d.yaml").write_text("binds:\n- listeners: []\n")
    (tmp_path / "e.json").write_text('{\n  "binds": [\n    {"port": 3000, "listener": []}\n  ]\n}\n')
    expected = {
        # the place of the key whose value names the variable
        "c.yaml": ["c.yaml:2:13: config.session.key: environment variable AGENTGW_TEST_UNSET_VARIABLE is not set"],
        # a missing key: the place of the object that lacks it
        "d.yaml": ["d.yaml:2:3: binds[0].port: required field is missing"],
        "e.json": [
            "e.json:3:5: binds[0].listeners: required field is missing",
            "e.json:3:20: binds[0].listener: unknown field; did you mean 'listeners'?",
        ],
    }
    for name, want in expected.items():
        r = run_cli("validate", "-f", name, cwd=tmp_path)
        assert r.returncode == 1 and sorted(lines(r)) == sorted(want), (name, r.stderr)


def test_run_refuses_with_the_same_lines(tmp_path):
    (tmp_path / "a.yaml").write_text(SHAPE_ERRORS)
    r = run_cli("run", "-f", "a.yaml", cwd=tmp_path, timeout=30)
    assert r.returncode == 1, r.stdout + r.stderr
    for line in SHAPE_LINES:
        assert line in r.stderr.splitlines(), r.stderr
    assert "Traceback" not in r.stdout + r.stderr


def test_an_empty_config_is_an_error_for_validate_and_run(tmp_path):
    for text in ("", "\n", "# nothing but a comment\n\n"):
        (tmp_path / "empty.yaml").write_text(text)
        r = run_cli("validate", "-f", "empty.yaml", cwd=tmp_path)
        assert r.returncode == 1 and lines(r) == ["empty.yaml: the config is empty"], (text, r.stdout, r.stderr)
        r = run_cli("run", "-f", "empty.yaml", cwd=tmp_path, timeout=30)
        assert r.returncode == 1 and "empty.yaml: the config is empty" in r.stderr, (text, r.stdout, r.stderr)


def test_a_refused_reload_logs_the_same_lines_and_keeps_serving(harness):
    up = harness.upstream("places")
    good = gateway_config([route("r", [up.host])], logging_format="text")
    gw = harness.gateway(good)
    assert httpx.get(gw.url + "/x").status_code == 200

    bad = textwrap.dedent(
        f"""\
        config:
          adminAddr: {good["config"]["adminAddr"]}
          statsAddr: {good["config"]["statsAddr"]}
          readinessAddr: {good["config"]["readinessAddr"]}
        binds:
        - port: {gw.port}
          listeners:
          - routes:
            - backends:
              - host: {up.host}
                wieght: 2
        """
    )
    assert gw.reload(bad, expect="failed") == "failed"
    line = f"{gw.config_path}:11:9: binds[0].listeners[0].routes[0].backends[0].wieght: unknown field; did you mean 'weight'?"
    wait_for(lambda: line in gw.stderr_text().splitlines(), timeout=5, message="the placed error in the log")
    assert httpx.get(gw.url + "/x").status_code == 200

    # an empty file (an editor caught half-way through a save) is refused too
    assert gw.reload("", expect="failed") == "failed"
    wait_for(lambda: f"{gw.config_path}: the config is empty" in gw.stderr_text(), timeout=5, message="empty")
    assert httpx.get(gw.url + "/x").status_code == 200
