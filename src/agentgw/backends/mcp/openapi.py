"""OpenAPI targets: every operation of a schema becomes an MCP tool; calls become HTTP.

Paths are relative to the path of the schema's ``servers`` URL (``/api/v3``).
Tool name: the ``operationId`` (else ``<method>_<path>`` with non-word characters as
``_``). Input schema: one property per path/query/header parameter plus ``body`` for a
JSON request body; local ``$ref``s are inlined. A call fills the path template, adds the
query string and headers, sends the JSON body through the gateway's pooled client and
returns the response body as text content (``isError`` for HTTP status ≥ 400). The
route's ``retry`` applies as for other HTTP targets (``upstream.exchange``).
"""

from __future__ import annotations

import asyncio
import re
from urllib.parse import quote, urlencode

import orjson
import yaml

from ...engine.http import GatewayError, encode_headers
from .jsonrpc import INVALID_PARAMS, METHOD_NOT_FOUND, RpcError
from .upstream import TargetSpec, Upstream, UpstreamGone, exchange

_METHODS = ("get", "post", "put", "patch", "delete", "head", "options")


def parse_schema(text: str) -> dict:
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError:
        doc = yaml.safe_load(text)
    if not isinstance(doc, dict) or "paths" not in doc:
        raise ValueError("not an OpenAPI document (no 'paths')")
    return doc


def _resolve(doc: dict, node, depth: int = 0):
    if depth > 20:
        return {}
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/"):
            cur = doc
            for part in ref[2:].split("/"):
                cur = cur.get(part.replace("~1", "/").replace("~0", "~"), {}) if isinstance(cur, dict) else {}
            return _resolve(doc, cur, depth + 1)
        return {k: _resolve(doc, v, depth + 1) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(doc, v, depth + 1) for v in node]
    return node


class Operation:
    __slots__ = ("name", "method", "path", "params", "has_body", "tool")

    def __init__(self, name, method, path, params, has_body, tool):
        self.name, self.method, self.path, self.params, self.has_body, self.tool = (
            name,
            method,
            path,
            params,
            has_body,
            tool,
        )


def server_prefix(doc: dict) -> str:
    """The path of the schema's (first) ``servers`` URL, e.g. ``/api/v3``: the operations'
    paths are relative to it. "" without one, or when it is the root."""
    servers = doc.get("servers")
    url = servers[0].get("url") if isinstance(servers, list) and servers and isinstance(servers[0], dict) else None
    if not isinstance(url, str):
        return ""
    if "://" in url or url.startswith("//"):
        rest = url.split("//", 1)[1]
        url = rest[rest.find("/") :] if "/" in rest else ""
    return url.split("?", 1)[0].split("#", 1)[0].rstrip("/")


def build_tools(doc: dict) -> dict[str, Operation]:
    ops: dict[str, Operation] = {}
    prefix = server_prefix(doc)
    for path, item in (doc.get("paths") or {}).items():
        item = _resolve(doc, item)
        common = item.get("parameters") or []
        for method in _METHODS:
            op = item.get(method)
            if not isinstance(op, dict):
                continue
            name = op.get("operationId") or re.sub(r"\W+", "_", f"{method}_{path}").strip("_")
            props, required, params = {}, [], []
            for p in [*common, *(op.get("parameters") or [])]:
                if not isinstance(p, dict) or "name" not in p:
                    continue
                loc = p.get("in", "query")
                if loc not in ("path", "query", "header"):
                    continue
                schema = dict(p.get("schema") or {"type": "string"})
                if p.get("description"):
                    schema["description"] = p["description"]
                props[p["name"]] = schema
                params.append((p["name"], loc))
                if p.get("required") or loc == "path":
                    required.append(p["name"])
            has_body = False
            rb = op.get("requestBody")
            if isinstance(rb, dict):
                content = rb.get("content") or {}
                js = content.get("application/json") or next(iter(content.values()), None)
                if isinstance(js, dict):
                    has_body = True
                    props["body"] = js.get("schema") or {"type": "object"}
                    if rb.get("required"):
                        required.append("body")
            schema = {"type": "object", "properties": props}
            if required:
                schema["required"] = sorted(set(required))
            tool = {
                "name": name,
                "description": op.get("summary") or op.get("description") or f"{method.upper()} {path}",
                "inputSchema": schema,
            }
            ops[name] = Operation(name, method.upper(), prefix + path, params, has_body, tool)
    return ops


class OpenApiUpstream(Upstream):
    kind = "openapi"
    resumable = True  # stateless: nothing to resume

    def __init__(self, spec: TargetSpec, on_message, pool):
        super().__init__(spec, on_message)
        self.pool = pool
        self.session_id = "openapi"

    async def _ops(self) -> dict[str, Operation]:
        oa = self.spec.openapi
        ops = oa.ops if oa is not None else None
        if ops is None:
            if oa is None or oa.url is None:  # (compiled with a schema or its URL)
                raise UpstreamGone(f"target {self.name}: no OpenAPI schema")
            ops = oa.load_text(await self._fetch(oa.url))
        return ops

    async def _fetch(self, url: str) -> str:
        from ..http import make_target

        target, host = make_target(url, tls=None, sni=None, connect_timeout=10.0)
        rest = url.split("://", 1)[1]
        path = "/" + rest.split("/", 1)[1] if "/" in rest else "/"
        head = f"GET {path} HTTP/1.1\r\nhost: {host or target.authority}\r\naccept: application/json, application/yaml\r\n\r\n".encode(
            "latin-1"
        )
        try:
            conn = await self.pool.exchange(target, head, b"", 30.0)
            try:
                body = await conn.read_body(32 << 20)
            finally:
                conn.release()
        except GatewayError as exc:
            raise UpstreamGone(f"target {self.name}: cannot fetch OpenAPI schema: {exc.message}") from None
        if conn.status != 200:
            raise UpstreamGone(f"target {self.name}: OpenAPI schema URL answered HTTP {conn.status}")
        return body.decode("utf-8")

    async def initialize(self, params: dict, timeout) -> dict:
        try:
            await self._ops()
        except ValueError as exc:
            raise UpstreamGone(f"target {self.name}: {exc}") from None
        self.version = params.get("protocolVersion")
        self.init_result = {
            "protocolVersion": self.version,
            "capabilities": {"tools": {}},
            "serverInfo": {"name": self.name, "version": "openapi"},
        }
        return self.init_result

    async def request(self, method: str, params, related, timeout):
        ops = await self._ops()
        if method == "tools/list":
            return {"tools": [op.tool for op in ops.values()]}
        if method == "ping":
            return {}
        if method != "tools/call":
            raise RpcError(METHOD_NOT_FOUND, f"{method} is not available on an OpenAPI target")
        name = (params or {}).get("name")
        op = ops.get(name) if isinstance(name, str) else None
        if op is None:
            raise RpcError(INVALID_PARAMS, f"unknown tool {(params or {}).get('name')!r}")
        args = (params or {}).get("arguments") or {}
        path = op.path
        query, headers = [], []
        for name, loc in op.params:
            if name not in args:
                if loc == "path":
                    raise RpcError(INVALID_PARAMS, f"missing path parameter {name!r}")
                continue
            v = args[name]
            sv = v if isinstance(v, str) else orjson.dumps(v).decode()
            if loc == "path":
                path = path.replace("{" + name + "}", quote(sv, safe=""))
            elif loc == "query":
                query.append((name, sv))
            else:
                headers.append((name.lower(), sv))
        spec = self.spec
        base = spec.path.rstrip("/") if spec.path and spec.path != "/" else ""
        target = base + path + (("?" + urlencode(query)) if query else "")
        body = b""
        if op.has_body and "body" in args:
            body = orjson.dumps(args["body"])
            headers.append(("content-type", "application/json"))
        h = [
            ("accept", "application/json"),
            ("content-length", str(len(body))),
            *spec.headers,
            *self.passed_headers(),
            *headers,
        ]
        head = f"{op.method} {target} HTTP/1.1\r\nhost: {spec.host}\r\n".encode("latin-1") + encode_headers(h) + b"\r\n"
        deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
        try:
            conn = await exchange(self.pool, spec, head, body, timeout, deadline)
            try:
                data = await conn.read_body(32 << 20)
            finally:
                conn.release()
        except GatewayError as exc:
            raise UpstreamGone(f"target {self.name}: {exc.message}") from None
        text = data.decode("utf-8", "replace")
        res = {"content": [{"type": "text", "text": text}], "isError": conn.status >= 400}
        ctype = conn.headers.get("content-type") or ""
        if "json" in ctype and conn.status < 400:
            try:
                doc = orjson.loads(data)
                if isinstance(doc, dict):
                    res["structuredContent"] = doc
            except orjson.JSONDecodeError:
                pass
        return res

    async def notify(self, method, params) -> None:
        return None

    async def respond(self, msg) -> None:
        return None


class OpenApiTools:
    """A target's parsed schema (loaded at compile time, or on first use for a URL)."""

    def __init__(self, text: str | None = None, url: str | None = None):
        self.url = url
        self.ops: dict[str, Operation] | None = None
        if text is not None:
            self.load_text(text)

    def load_text(self, text: str) -> dict[str, Operation]:
        self.ops = ops = build_tools(parse_schema(text))
        return ops
