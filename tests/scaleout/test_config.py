"""Config errors for the global limiters and tracing name the field at fault."""

from __future__ import annotations

from tests.support.harness import dump_yaml, gateway_config, route, run_cli


def test_validate_reports_paths(tmp_path):
    cfg = gateway_config(
        [
            route(
                "r",
                ["127.0.0.1:1"],
                policies={
                    "globalRateLimit": {
                        "redis": {"url": "redis://127.0.0.1:6379/0"},
                        "descriptors": [
                            {
                                "entries": [{"key": "u", "value": "jwt.sub +"}],
                                "rateLimit": {"requestsPerUnit": 1, "unit": "MINUTE"},
                            },
                            {
                                "entries": [{"key": "u", "value": "jwt.sub"}],
                                "rateLimit": {"requestsPerUnit": 1, "unit": "FORTNIGHT"},
                            },
                        ],
                    },
                    "remoteRateLimit": {
                        "domain": "d",
                        "host": "127.0.0.1:1",
                        "descriptors": [{"entries": [{"key": "k", "value": "nosuchvar.x"}]}],
                    },
                },
            )
        ],
        extra_config={"tracing": {"otlpEndpoint": "http://127.0.0.1:1", "randomSampling": "often"}},
    )
    f = tmp_path / "c.yaml"
    f.write_text(dump_yaml(cfg))
    r = run_cli("validate", "-f", str(f))
    assert r.returncode == 1
    assert "routes[0].policies.globalRateLimit.descriptors[1].rateLimit.unit" in r.stderr, r.stderr
    cfg["binds"][0]["listeners"][0]["routes"][0]["policies"]["globalRateLimit"]["descriptors"].pop(1)
    f.write_text(dump_yaml(cfg))
    r = run_cli("validate", "-f", str(f))
    assert r.returncode == 1
    err = r.stderr
    assert "routes[0].policies.globalRateLimit.descriptors[0].entries" in err, err
    assert "routes[0].policies.remoteRateLimit.descriptors[0].entries" in err, err
    assert "config.tracing.randomSampling" in err, err


def test_validate_accepts_the_documented_shapes(tmp_path):
    cfg = gateway_config(
        [
            route(
                "r",
                ["127.0.0.1:1"],
                policies={
                    "globalRateLimit": {
                        "redis": {"url": "redis://127.0.0.1:6379/0", "timeout": "50ms"},
                        "window": "sliding",
                        "failureMode": "failClosed",
                        "descriptors": [
                            {
                                "entries": [{"key": "generic_key", "value": '"counter"'}],
                                "rateLimit": {"requestsPerUnit": 5, "unit": "MINUTE"},
                            },
                            {
                                "entries": [{"key": "tool", "value": "mcp.tool.name"}],
                                "when": 'mcp.tool.name == "execute_code"',
                                "rateLimit": {"requestsPerUnit": 10, "unit": "minute"},
                                "type": "requests",
                            },
                        ],
                    },
                    "remoteRateLimit": {
                        "domain": "agentgateway",
                        "host": "127.0.0.1:8081",
                        "failureMode": "failOpen",
                        "descriptors": [{"entries": [{"key": "user", "value": "jwt.sub"}], "type": "tokens"}],
                    },
                },
            )
        ]
    )
    cfg["frontendPolicies"] = {
        "tracing": {"host": "127.0.0.1:4317", "randomSampling": True},
        "accessLog": {"add": {"user": "jwt.sub"}, "remove": ["host"]},
    }
    f = tmp_path / "c.yaml"
    f.write_text(dump_yaml(cfg))
    r = run_cli("validate", "-f", str(f))
    assert r.returncode == 0, r.stderr
