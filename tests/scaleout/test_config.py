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


def test_validate_refuses_redis_urls_the_client_does_not_follow(tmp_path):
    """What the Redis URL says is done or refused at load, by path, without echoing it."""
    bad = [
        "http://s3cret@127.0.0.1:6379/0",  # not Redis
        "unix:///run/redis.sock",  # a socket path: would have gone to 127.0.0.1:6379
        "redis://127.0.0.1:6379/first",  # not a database number: would have been db 0
        "rediss://127.0.0.1:6380/0?ssl_cert_reqs=none",  # would have verified anyway
        "redis://agw@127.0.0.1:6379/0",  # a user without a password: no AUTH would be sent
        "redis://:s3cret@127.0.0.1:99999/0",  # port out of range
    ]
    good = ["redis://127.0.0.1:6379", "rediss://agw:s3cret@redis.example:6380/2", "redis://:p%40ss@[::1]/0?db=3"]

    def policy(url: str) -> dict:
        return {
            "globalRateLimit": {
                "redis": {"url": url},
                "descriptors": [
                    {"entries": [{"key": "k", "value": '"v"'}], "rateLimit": {"requestsPerUnit": 1, "unit": "MINUTE"}}
                ],
            }
        }

    urls = bad + good
    cfg = gateway_config(
        [route(f"r{i}", ["127.0.0.1:1"], prefix=f"/{i}", policies=policy(u)) for i, u in enumerate(urls)]
    )
    # the rest of the block is still checked past a refused URL
    cfg["binds"][0]["listeners"][0]["routes"][0]["policies"]["remoteRateLimit"] = {
        "domain": "d",
        "host": "127.0.0.1:1",
        "descriptors": [{"entries": [{"key": "k", "value": "nosuchvar.x"}]}],
    }
    f = tmp_path / "c.yaml"
    f.write_text(dump_yaml(cfg))
    r = run_cli("validate", "-f", str(f))
    assert r.returncode == 1
    err = r.stderr
    for i in range(len(urls)):
        where = f"routes[{i}].policies.globalRateLimit.redis.url"
        assert (where in err) == (i < len(bad)), (urls[i], err)
    assert "routes[0].policies.remoteRateLimit.descriptors[0].entries" in err, err
    assert "Traceback" not in err, err
    assert "s3cret" not in err and "first" not in err, err
