"""The request log database (``config.database`` / ``config.logging.database``): real
agentgw processes writing to SQLite and to a real PostgreSQL, the caller's identity in
the user and group columns, the access log's filter and fields applied, and a database
that is down costing no request."""

from __future__ import annotations

import json
import sqlite3

import httpx
import pytest
import yaml

from agentgw.compile import check_config_file
from agentgw.config import ConfigError
from tests.support.harness import closed_port, free_port, gateway_config, route, wait_for
from tests.support.postgres import PostgresServer

KEYS = [
    {"key": "key-alice", "metadata": {"name": "alice", "group": "research"}},
    {"key": "key-bob", "metadata": {"name": "bob"}},
]


def _config(up, log_database: dict, **config) -> dict:
    cfg = gateway_config(
        [
            route("api", [up.host], prefix="/api", policies={"apiKey": {"mode": "strict", "keys": KEYS}}),
            route("health", [up.host], prefix="/health"),
        ]
    )
    cfg["config"]["logging"] = {
        "format": "json",
        "filter": 'request.path != "/health"',
        "fields": {"add": {"tier": '"gold"'}, "remove": ["bytes_received"]},
        "database": log_database,
    }
    cfg["config"].update(config)
    return cfg


def _rows(path) -> list[dict]:
    try:
        c = sqlite3.connect(path)
    except sqlite3.Error:
        return []
    try:
        c.row_factory = sqlite3.Row
        return [dict(r) for r in c.execute("SELECT * FROM request_logs ORDER BY id")]
    except sqlite3.OperationalError:  # not created yet
        return []
    finally:
        c.close()


def test_sqlite_rows_with_caller_filter_and_fields(harness, tmp_path):
    up = harness.upstream()
    db = tmp_path / "requests.db"
    gw = harness.gateway(_config(up, {"url": f"sqlite://{db}"}))
    c = httpx.Client(base_url=gw.url, timeout=10)
    assert c.get("/api/a", headers={"authorization": "Bearer key-alice"}).status_code == 200
    assert c.get("/api/b", headers={"authorization": "Bearer key-bob", "user-agent": "curl/8.5.0"}).status_code == 200
    assert c.get("/api/c", headers={"authorization": "Bearer nope"}).status_code == 401
    assert c.get("/health").status_code == 200  # filtered out, as from the access log
    rows = wait_for(lambda: len(r := _rows(db)) >= 3 and r, timeout=10, message="three rows")
    assert len(rows) == 3
    by_path = {json.loads(r["attributes_json"])["path"]: r for r in rows}
    assert set(by_path) == {"/api/a", "/api/b", "/api/c"}
    a, b, bad = by_path["/api/a"], by_path["/api/b"], by_path["/api/c"]
    assert (a["http_status"], a["agentgateway_user"], a["agentgateway_group"]) == (200, "alice", "research")
    assert (b["agentgateway_user"], b["agentgateway_group"], b["user_agent_name"]) == ("bob", None, "curl")
    assert (bad["http_status"], bad["agentgateway_user"]) == (401, None)
    attrs = json.loads(a["attributes_json"])
    assert attrs["tier"] == "gold" and "bytes_received" not in attrs and attrs["route"] == "api"
    assert a["gen_ai_provider_name"] is None and a["has_payload"] == 0
    # ids are version-7 UUIDs: time-ordered, so ORDER BY id is the order requests ended
    assert all(r["id"][14] == "7" for r in rows)
    assert [json.loads(r["attributes_json"])["path"] for r in rows] == ["/api/a", "/api/b", "/api/c"]
    # the table agentgateway keeps prompts in is there (and empty: none are stored)
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM request_log_payloads").fetchone() == (0,)


def test_standard_attributes_choose_user_and_group(harness, tmp_path):
    up = harness.upstream()
    db = tmp_path / "requests.db"
    cfg = _config(
        up,
        {"url": str(db)},  # a plain path is a SQLite file too
        database={"url": "postgres://ignored:ignored@127.0.0.1:1/none"},  # logging.database wins
        standardAttributes={"user": 'request.headers["x-user"]', "group": '"team-" + apiKey.name'},
    )
    gw = harness.gateway(cfg)
    r = httpx.get(gw.url + "/api/x", headers={"authorization": "Bearer key-bob", "x-user": "u-17"}, timeout=10)
    assert r.status_code == 200
    (row,) = wait_for(lambda: _rows(db), timeout=10, message="the row")
    assert (row["agentgateway_user"], row["agentgateway_group"]) == ("u-17", "team-bob")


def test_postgres_down_costs_no_request_and_is_said_once(harness):
    up = harness.upstream()
    port = closed_port()
    gw = harness.gateway(_config(up, {"url": f"postgresql://u:secret-pw@127.0.0.1:{port}/db"}))
    c = httpx.Client(base_url=gw.url, timeout=10)
    for i in range(5):
        assert c.get(f"/api/{i}", headers={"authorization": "Bearer key-alice"}).status_code == 200
    wait_for(lambda: "request log database" in gw.logs(), timeout=10, message="the warning")
    for i in range(5):
        assert c.get(f"/api/{i}", headers={"authorization": "Bearer key-alice"}).status_code == 200
    logs = gw.logs()
    lines = [ln for ln in logs.splitlines() if "request log database" in ln]
    assert len(lines) == 1, lines  # the same reason is not repeated
    assert "secret-pw" not in logs and "u:***@127.0.0.1" in lines[0]


def test_postgres_rows_survive_a_reload(harness):
    pg = PostgresServer(free_port())
    try:
        up = harness.upstream()
        cfg = _config(up, {"url": pg.url, "maxConnections": 2})
        gw = harness.gateway(cfg)
        c = httpx.Client(base_url=gw.url, timeout=10)
        for i in range(20):
            assert c.get(f"/api/{i}", headers={"authorization": "Bearer key-alice"}).status_code == 200
        cfg["config"]["logging"]["fields"]["add"]["tier"] = '"silver"'
        gw.reload(cfg)
        for i in range(20, 25):
            assert c.get(f"/api/{i}", headers={"authorization": "Bearer key-bob"}).status_code == 200

        def count():
            try:
                return pg.sql(None, "SELECT count(*) AS n FROM request_logs")[0]["n"] == 25
            except Exception:
                return False

        wait_for(count, timeout=15, message="25 rows")
        rows = pg.sql(None, "SELECT agentgateway_user, attributes_json->>'tier' AS tier FROM request_logs")
        assert sorted((r["agentgateway_user"], r["tier"]) for r in rows) == sorted(
            [("alice", "gold")] * 20 + [("bob", "silver")] * 5
        )
        # at most maxConnections connections from the gateway
        conns = pg.sql(
            None, "SELECT count(*) AS n FROM pg_stat_activity WHERE usename = 'agentgw' AND pid <> pg_backend_pid()"
        )
        assert conns[0]["n"] <= 2
    finally:
        pg.stop()


@pytest.mark.parametrize(
    ("config", "error"),
    [
        ({"database": {"url": "x.db", "maxConnections": 0}}, "config.database.maxConnections"),
        (
            {"logging": {"database": {"url": "sqlite://x.db", "maxConnections": 2}}},
            "config.logging.database.maxConnections: is only used with PostgreSQL",
        ),
        ({"standardAttributes": {"user": "jwt.sub"}}, "config.standardAttributes: is only used with config.database"),
        (
            {"database": {"url": "x.db"}, "standardAttributes": {"user": "jwt.sub +"}},
            "config.standardAttributes.user",
        ),
        ({"logging": {"database": {}}}, "config.logging.database.url"),
    ],
)
def test_refused_at_load(tmp_path, config, error):
    cfg = {
        "config": config,
        "binds": [{"port": free_port(), "listeners": [{"routes": [{"backends": [{"host": "127.0.0.1:1"}]}]}]}],
    }
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError) as exc:
        check_config_file(str(p))
    assert error in str(exc.value)
