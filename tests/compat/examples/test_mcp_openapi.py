"""agentgateway's mcp-openapi example, run as its README runs it.

The vendored ``examples/mcp-openapi/config.yaml`` is loaded unchanged except:

* the bind's port 3000 -> a free port;
* the ``openapi`` target's ``host: localhost:8080`` (the Swagger Petstore of the README's
  ``docker compose up``) -> ``localhost:<port>`` of a small local stand-in for that
  petstore (the operations the test calls, under the schema's ``servers`` URL ``/api/v3``);
* ``config.adminAddr/statsAddr/readinessAddr`` added on free ports.

The schema path ``./examples/mcp-openapi/openapi.json`` is kept as written: like the README
(which runs from the repository root) the gateway runs from a directory where that path
holds the vendored ``openapi.json``.

README steps checked (the Inspector's calls are made by the official MCP SDK client):

* "This will expose each method in the openapi specification as MCP tools": ``tools/list``
  has one tool per operation of ``openapi.json``, named by its ``operationId``;
* "and proxy them to the petstore application": calls reach the petstore at the schema's
  paths (``/api/v3/...``), with path, query and JSON body arguments;
* "try out one of the tools, like ``placeOrder``": the order is placed and its JSON is the
  tool result; an error answer of the API is a tool error;
* the config's CORS policy (``maxAge: 5m``): a browser preflight is answered.
"""

from __future__ import annotations

import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import yaml
from mcp.client.client import Client

from tests.mcp.conftest import run
from tests.support.harness import Gateway, free_port

EXAMPLE_DIR = Path(__file__).parents[1] / "agentgateway" / "examples" / "mcp-openapi"
SCHEMA = json.loads((EXAMPLE_DIR / "openapi.json").read_text())


class Petstore:
    """Stand-in for the petstore3 demo app: a few of its operations, in memory; every
    request is recorded as (method, path, query, host header, JSON body)."""

    PETS = {10: {"id": 10, "name": "doggie", "status": "available", "photoUrls": []}}

    def __init__(self):
        self.requests: list[tuple[str, str, dict, str, object]] = []
        self.orders: dict[int, dict] = {}
        store = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _reply(self, status: int, doc) -> None:
                data = json.dumps(doc).encode() if not isinstance(doc, str) else doc.encode()
                self.send_response(status)
                self.send_header("content-type", "application/json" if not isinstance(doc, str) else "text/plain")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self) -> None:
                u = urlsplit(self.path)
                n = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(n) if n else b""
                body = json.loads(raw) if raw else None
                store.requests.append((self.command, u.path, parse_qs(u.query), self.headers.get("host"), body))
                parts = u.path.split("/")
                if self.command == "POST" and u.path == "/api/v3/store/order":
                    store.orders[body["id"]] = body
                    self._reply(200, body)
                elif self.command == "GET" and u.path.startswith("/api/v3/store/order/"):
                    order = store.orders.get(int(parts[-1]))
                    self._reply(200, order) if order else self._reply(404, "Order not found")
                elif self.command == "GET" and u.path == "/api/v3/pet/findByStatus":
                    status = parse_qs(u.query).get("status", ["available"])[0]
                    self._reply(200, [p for p in store.PETS.values() if p["status"] == status])
                elif self.command == "GET" and u.path.startswith("/api/v3/pet/"):
                    pet = store.PETS.get(int(parts[-1]))
                    self._reply(200, pet) if pet else self._reply(404, "Pet not found")
                else:
                    self._reply(404, f"no route for {self.command} {u.path}")

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def petstore():
    p = Petstore()
    yield p
    p.close()


def _gateway(harness, tmp_path: Path, petstore: Petstore) -> int:
    cfg = yaml.safe_load((EXAMPLE_DIR / "config.yaml").read_text())
    bind = cfg["binds"][0]
    assert bind["port"] == 3000
    port = bind["port"] = free_port()
    route = bind["listeners"][0]["routes"][0]
    target = route["backends"][0]["mcp"]["targets"][0]
    assert target["openapi"] == {"schema": {"file": "./examples/mcp-openapi/openapi.json"}, "host": "localhost:8080"}
    target["openapi"]["host"] = f"localhost:{petstore.port}"
    cfg["config"] = {f"{k}Addr": f"127.0.0.1:{free_port()}" for k in ("admin", "stats", "readiness")}
    # the gateway's working directory plays the repository root of the README
    root = tmp_path / "agentgateway"
    (root / "examples/mcp-openapi").mkdir(parents=True)
    shutil.copy(EXAMPLE_DIR / "openapi.json", root / "examples/mcp-openapi/openapi.json")
    gw = Gateway(root, cfg, wait_ready=False)
    harness.gateways.append(gw)  # stopped (and checked for tracebacks) by the harness
    gw.wait_ready()
    return port


def test_petstore_operations_are_tools_proxied_to_the_api(harness, tmp_path, petstore):
    port = _gateway(harness, tmp_path, petstore)
    operations = {op["operationId"] for item in SCHEMA["paths"].values() for op in item.values() if "operationId" in op}
    assert len(operations) == 19

    order = {"id": 7, "petId": 10, "quantity": 2, "shipDate": "2025-01-15T10:00:00Z", "status": "placed"}

    async def go():
        async with Client(f"http://127.0.0.1:{port}/mcp") as c:
            tools = {t.name: t for t in (await c.list_tools()).tools}
            assert set(tools) == operations
            assert "body" in tools["placeOrder"].input_schema["properties"]

            r = await c.call_tool("placeOrder", {"body": order})
            assert not r.is_error, r
            assert json.loads(r.content[0].text) == order

            r = await c.call_tool("getOrderById", {"orderId": 7})
            assert not r.is_error and json.loads(r.content[0].text)["quantity"] == 2

            r = await c.call_tool("getPetById", {"petId": 10})
            assert json.loads(r.content[0].text)["name"] == "doggie"
            r = await c.call_tool("findPetsByStatus", {"status": "available"})
            assert [p["id"] for p in json.loads(r.content[0].text)] == [10]

            r = await c.call_tool("getPetById", {"petId": 99})
            assert r.is_error and r.content[0].text == "Pet not found"

    run(go())
    seen = [(m, p, q, b) for m, p, q, _, b in petstore.requests]
    assert seen == [
        ("POST", "/api/v3/store/order", {}, order),
        ("GET", "/api/v3/store/order/7", {}, None),
        ("GET", "/api/v3/pet/10", {}, None),
        ("GET", "/api/v3/pet/findByStatus", {"status": ["available"]}, None),
        ("GET", "/api/v3/pet/99", {}, None),
    ]
    assert {h for *_, h, _ in petstore.requests} == {f"localhost:{petstore.port}"}

    # the Inspector runs in a browser: CORS as configured
    pre = httpx.options(
        f"http://127.0.0.1:{port}/mcp",
        headers={
            "origin": "http://localhost:6274",
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type,mcp-session-id",
        },
        timeout=10,
    )
    assert pre.status_code == 200, pre.text
    assert pre.headers["access-control-allow-origin"] == "*"
    assert pre.headers["access-control-max-age"] == "300"
