"""A stand-in Kubernetes API server for the controller tests (aiohttp, 127.0.0.1).

It follows the API's documented behaviour for what the controller uses:

* one cluster-wide, increasing ``resourceVersion``; every write bumps it; lists carry the
  current one in ``metadata.resourceVersion`` and their items carry no kind/apiVersion;
* ``?watch=true&resourceVersion=N`` streams JSON lines ``{"type", "object"}`` for changes
  after N (ADDED / MODIFIED / DELETED), then live ones; a version older than the retained
  history gets an ``ERROR`` event with a 410 ``Status`` (``compact()`` drops history);
* POST: 409 ``AlreadyExists``; sets uid, creationTimestamp, generation 1; Secrets'
  ``stringData`` is folded into base64 ``data``;
* PUT: 409 ``Conflict`` when ``metadata.resourceVersion`` is not the current one; on kinds
  with a status subresource the main resource ignores ``status`` and ``/status`` ignores
  everything but ``status``; ``generation`` moves only when ``spec`` changes;
* PATCH ``application/merge-patch+json`` (RFC 7386), same subresource rules;
* DELETE removes the object and, like the garbage collector, what it owns;
* objects of the kinds whose schemas the project has (its CRDs, the Gateway API kinds) are
  validated on create, replace and patch as an API server with those CRDs installed does:
  a problem is 422 ``Invalid``; an unknown field is 400 ``BadRequest`` with
  ``?fieldValidation=Strict`` (what ``kubectl apply`` sends), and otherwise is dropped
  with a ``Warning`` header (the API server's default);
* lists are paginated with ``?limit=N``: a page carries ``metadata.continue`` while more
  remain, and the next pages (``?continue=TOKEN``) come from the same snapshot, at the
  first page's ``resourceVersion``; a token older than the retained history (``compact()``,
  or ``expire_next_continue``) gets 410 ``Expired``;
* every request must carry ``Authorization: Bearer <token>`` (401 ``Unauthorized``
  otherwise), so a client proves it loaded the credentials of the kubeconfig or service
  account it was given; ``start(ssl_context)`` serves HTTPS;
* group/versions in ``unserved`` answer 404, as a cluster without those CRDs does.

Clients reach it the way they reach a cluster: `write_kubeconfig` writes a kubeconfig file
for it (its address, CA and token).
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import os
import ssl
import uuid

import yaml
from aiohttp import web

from agentgw.kube import schema
from agentgw.kube.client import KubeClient

NO_STATUS = {"secrets", "configmaps", "serviceaccounts", "namespaces", "referencegrants"}
CLUSTER = {"gatewayclasses", "namespaces"}
KINDS = {
    "gatewayclasses": "GatewayClass",
    "gateways": "Gateway",
    "httproutes": "HTTPRoute",
    "grpcroutes": "GRPCRoute",
    "referencegrants": "ReferenceGrant",
    "namespaces": "Namespace",
    "services": "Service",
    "secrets": "Secret",
    "configmaps": "ConfigMap",
    "serviceaccounts": "ServiceAccount",
    "deployments": "Deployment",
    "horizontalpodautoscalers": "HorizontalPodAutoscaler",
    "poddisruptionbudgets": "PodDisruptionBudget",
    "agentgatewaybackends": "AgentgatewayBackend",
    "agentgatewaypolicies": "AgentgatewayPolicy",
    "agentgatewayparameters": "AgentgatewayParameters",
    "enterpriseagentgatewaypolicies": "EnterpriseAgentgatewayPolicy",
    "ratelimitconfigs": "RateLimitConfig",
    "backends": "Backend",
    "trafficpolicies": "TrafficPolicy",
}
PLURALS = {v: k for k, v in KINDS.items()}


def merge_patch(target, patch):
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def admit(group: str, obj: dict, field_validation: str = "Warn") -> tuple[dict | None, list[str], web.Response | None]:
    """Schema validation as the API server does it: (object to store, warnings, refusal)."""
    problems = schema.validate(obj, server=True)
    unknown = [p for p in problems if schema.is_unknown_field(p)]
    invalid = [p for p in problems if p not in unknown]
    name = f'{obj.get("kind")}.{group} "{(obj.get("metadata") or {}).get("name")}"'
    if invalid:
        return None, [], _status(422, "Invalid", f"{name} is invalid: " + "; ".join(invalid))
    if unknown and field_validation == "Strict":
        return (
            None,
            [],
            _status(
                400,
                "BadRequest",
                f"{name}: strict decoding error: "
                + ", ".join(f'unknown field "{p.split(":", 1)[0]}"' for p in unknown),
            ),
        )
    if unknown and field_validation != "Ignore":
        return schema.prune(obj), [f'unknown field "{p.split(":", 1)[0]}"' for p in unknown], None
    return (schema.prune(obj) if unknown else obj), [], None


def _warn(warnings: list[str]) -> dict:
    return {"Warning": "; ".join(f'299 - "{w}"' for w in warnings)} if warnings else {}


def _status(code: int, reason: str, message: str) -> web.Response:
    return web.json_response(
        {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": reason, "message": message},
        status=code,
    )


TRUE = {"1", "t", "T", "true", "TRUE", "True"}  # Go's strconv.ParseBool


class FakeApi:
    def __init__(self, token: str | None = "stand-in-token", unserved: tuple[str, ...] = ()):
        self.token = token
        self.unserved = set(unserved)  # "group/version" with no CRD installed
        self.snapshots: dict[str, tuple[str, list[dict]]] = {}  # continue token -> (rv, remaining items)
        self.expire_next_continue = False
        self.calls: list[dict] = []  # method, path, query, status, authorization
        self.rv = 100
        self.objects: dict[tuple[str, str, str, str], dict] = {}  # (group, plural, ns, name)
        self.history: list[tuple[int, str, tuple, dict]] = []
        self.oldest = 0
        self.cond = asyncio.Condition()
        self.requests: list[tuple[str, str, int]] = []
        self.conflict_next: set[tuple] = set()
        self.epoch = 0  # keys whose next write loses a race
        self.runner: web.AppRunner | None = None
        self.url = ""

    # -- storage ----------------------------------------------------------------------------
    def _bump(self) -> str:
        self.rv += 1
        return str(self.rv)

    async def _record(self, typ: str, key: tuple, obj: dict) -> None:
        self.history.append((int(obj["metadata"]["resourceVersion"]), typ, key, copy.deepcopy(obj)))
        async with self.cond:
            self.cond.notify_all()

    async def drop_watches(self) -> None:
        """End every open watch, as an API server restart or timeout does."""
        self.epoch += 1
        async with self.cond:
            self.cond.notify_all()

    def compact(self) -> None:
        """Forget history, as etcd compaction does: older watches get 410 Gone."""
        self.history.clear()
        self.oldest = self.rv

    def get(self, kind: str, ns: str, name: str, group: str | None = None) -> dict | None:
        plural = PLURALS[kind]
        for (g, p, n, nm), o in self.objects.items():
            if p == plural and n == ns and nm == name and (group is None or g == group):
                return o
        return None

    def list_kind(self, kind: str) -> list[dict]:
        return [o for (g, p, n, nm), o in sorted(self.objects.items()) if p == PLURALS[kind]]

    async def put_object(self, group: str, obj: dict, field_validation: str = "Strict", validate: bool = True) -> dict:
        """Create (test set-up), as a POST would; ``validate=False`` stores it as it is, as a
        cluster whose CRD has a wider schema would."""
        plural = PLURALS[obj["kind"]]
        ns = "" if plural in CLUSTER else (obj["metadata"].get("namespace") or "default")
        obj = copy.deepcopy(obj)
        if validate:
            obj, _, refused = admit(group, obj, field_validation)
            if refused is not None:
                raise ValueError(refused.text)
        return await self._create(group, plural, ns, obj)

    async def set_status(self, kind: str, ns: str, name: str, status: dict) -> None:
        """What another component (kubelet, deployment controller, cloud LB) would write."""
        key = next(k for k, o in self.objects.items() if k[1] == PLURALS[kind] and k[2] == ns and k[3] == name)
        o = self.objects[key]
        o["status"] = merge_patch(o.get("status") or {}, status)
        o["metadata"]["resourceVersion"] = self._bump()
        await self._record("MODIFIED", key, o)

    async def _create(self, group, plural, ns, obj) -> dict:
        key = (group, plural, ns, obj["metadata"]["name"])
        md = obj["metadata"]
        if ns:
            md["namespace"] = ns
        md["uid"] = str(uuid.uuid4())
        md["creationTimestamp"] = md.get("creationTimestamp") or "2026-11-23T00:00:00Z"
        md["generation"] = 1
        md["resourceVersion"] = self._bump()
        if plural == "secrets" and "stringData" in obj:
            data = obj.setdefault("data", {})
            for k, v in obj.pop("stringData").items():
                data[k] = base64.b64encode(v.encode()).decode()
        if plural == "services":
            obj.setdefault("spec", {}).setdefault("clusterIP", f"10.96.0.{len(self.objects) % 250 + 1}")
        self.objects[key] = obj
        await self._record("ADDED", key, obj)
        return obj

    # -- HTTP -------------------------------------------------------------------------------
    def _parse(self, request: web.Request):
        parts = [p for p in request.path.split("/") if p]
        if len(parts) < 3 or parts[0] not in ("api", "apis") or (parts[0] == "apis" and len(parts) < 4):
            return None
        if parts[0] == "api":
            group, rest = "", parts[2:]
        else:
            group, rest = parts[1], parts[3:]
        ns = ""
        if len(rest) >= 2 and rest[0] == "namespaces" and len(rest) > 2:
            ns, rest = rest[1], rest[2:]
        plural = rest[0]
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        return group, plural, ns, name, sub

    async def handle(self, request: web.Request) -> web.StreamResponse:
        auth = request.headers.get("Authorization", "")
        watching = request.query.get("watch") in TRUE
        parsed = self._parse(request)
        # logged as it arrives (a watch answers for minutes); "status" once it is answered
        call = {"method": request.method, "path": request.path, "query": dict(request.query), "authorization": auth}
        self.calls.append(call)
        if self.token is not None and auth != f"Bearer {self.token}":
            resp = _status(401, "Unauthorized", "Unauthorized")
        elif parsed is None:
            resp = _status(404, "NotFound", "the server could not find the requested resource")
        else:
            resp = await self._handle(request, *parsed)
        self.requests.append((request.method, request.path + ("?watch" if watching else ""), resp.status))
        call["status"] = resp.status
        if parsed and parsed[3] is None and request.method == "GET" and not watching and resp.status == 200:
            call["list"] = json.loads(resp.body)["metadata"]  # what a list answered: resourceVersion, continue
        return resp

    async def _handle(self, request, group, plural, ns, name, sub):
        version = [p for p in request.path.split("/") if p][2 if group else 1]
        if plural not in KINDS or f"{group}/{version}".lstrip("/") in self.unserved:
            return _status(404, "NotFound", f"the server could not find the requested resource ({plural})")
        m = request.method
        if m == "GET" and name is None:
            if request.query.get("watch") in TRUE:
                return await self._watch(request, group, plural, ns)
            return self._list(request, group, plural, ns)
        key = (group, plural, ns, name)
        cur = self.objects.get(key)
        if m == "GET":
            return (
                web.json_response(self._out(cur)) if cur else _status(404, "NotFound", f"{plural} {name!r} not found")
            )
        fv = request.query.get("fieldValidation", "Warn")
        if m == "POST":
            body = await request.json()
            if (group, plural, ns, body["metadata"]["name"]) in self.objects:
                return _status(409, "AlreadyExists", f"{plural} {body['metadata']['name']!r} already exists")
            body.pop("status", None) if plural not in NO_STATUS else None
            body, warnings, refused = admit(group, body, fv)
            if refused is not None:
                return refused
            return web.json_response(
                self._out(await self._create(group, plural, ns, body)), status=201, headers=_warn(warnings)
            )
        if cur is None:
            return _status(404, "NotFound", f"{plural} {name!r} not found")
        if m == "DELETE":
            await self._delete(key)
            return web.json_response({"kind": "Status", "status": "Success"})
        body = await request.json()
        if key in self.conflict_next:
            # another writer got there first
            self.conflict_next.discard(key)
            cur["metadata"]["resourceVersion"] = self._bump()
            cur["metadata"].setdefault("annotations", {})["test/raced"] = str(self.rv)
            await self._record("MODIFIED", key, cur)
        if m == "PUT":
            if body.get("metadata", {}).get("resourceVersion") != cur["metadata"]["resourceVersion"]:
                return _status(
                    409,
                    "Conflict",
                    f"Operation cannot be fulfilled on {plural} {name!r}: the object has been modified; please apply your changes to the latest version and try again",
                )
            new = body
        elif m == "PATCH":
            if request.content_type != "application/merge-patch+json":
                return _status(415, "UnsupportedMediaType", request.content_type)
            prv = (body.get("metadata") or {}).get("resourceVersion")
            if prv and prv != cur["metadata"]["resourceVersion"]:
                return _status(409, "Conflict", "the object has been modified")
            new = merge_patch(cur, body)
        else:
            return _status(405, "MethodNotAllowed", m)
        new = copy.deepcopy(new)
        has_status = plural not in NO_STATUS
        if sub == "status":
            out = copy.deepcopy(cur)
            out["status"] = new.get("status")
        else:
            out = new
            if has_status:
                out["status"] = copy.deepcopy(cur.get("status"))
                if out["status"] is None:
                    out.pop("status")
            for f in ("uid", "creationTimestamp", "namespace", "name"):
                if f in cur["metadata"]:
                    out["metadata"][f] = cur["metadata"][f]
            out["metadata"]["generation"] = cur["metadata"]["generation"] + (
                1 if out.get("spec") != cur.get("spec") else 0
            )
            if plural == "secrets" and "stringData" in out:
                data = out.setdefault("data", {})
                for k, v in out.pop("stringData").items():
                    data[k] = base64.b64encode(v.encode()).decode()
        warnings: list[str] = []
        if sub != "status":
            out, warnings, refused = admit(group, out, fv)
            if refused is not None:
                return refused
        if out == cur:
            return web.json_response(self._out(cur))  # no-op writes don't bump resourceVersion
        out["metadata"]["resourceVersion"] = self._bump()
        self.objects[key] = out
        await self._record("MODIFIED", key, out)
        return web.json_response(self._out(out), headers=_warn(warnings))

    async def _delete(self, key) -> None:
        obj = self.objects.pop(key)
        obj["metadata"]["resourceVersion"] = self._bump()
        await self._record("DELETED", key, obj)
        uid = obj["metadata"]["uid"]
        for k, o in list(self.objects.items()):
            if any(r.get("uid") == uid for r in o["metadata"].get("ownerReferences") or []):
                await self._delete(k)

    def _list(self, request, group, plural, ns) -> web.Response:
        q = request.query
        token = q.get("continue")
        if token:
            if token not in self.snapshots:
                return _status(400, "BadRequest", "continue key is not valid")
            rv, items = self.snapshots.pop(token)
            if self.expire_next_continue or int(rv) < self.oldest:
                self.expire_next_continue = False
                return _status(
                    410,
                    "Expired",
                    "The provided continue parameter is too old to display a consistent list result. "
                    "You can start a new list without the continue parameter.",
                )
        else:
            rv = str(self.rv)
            items = [
                self._out(o)
                for (g, p, n, nm), o in sorted(self.objects.items())
                if g == group and p == plural and (not ns or n == ns) and self._selected(o, q.get("labelSelector"))
            ]
            for it in items:
                it.pop("kind", None)
                it.pop("apiVersion", None)
        limit = int(q.get("limit") or 0)
        meta: dict = {"resourceVersion": rv}
        if limit and len(items) > limit:
            items, rest = items[:limit], items[limit:]
            nxt = uuid.uuid4().hex
            self.snapshots[nxt] = (rv, rest)
            meta["continue"] = nxt
            meta["remainingItemCount"] = len(rest)
        return web.json_response({"kind": KINDS[plural] + "List", "apiVersion": "v1", "metadata": meta, "items": items})

    def write_kubeconfig(
        self, path: str, context: str = "stand-in", ca_file: str | None = None, token: str | None = None
    ) -> str:
        """A kubeconfig whose current context is this server, with its token (or ``token``)."""
        cluster: dict = {"server": self.url}
        if ca_file:
            cluster["certificate-authority"] = ca_file
        user = {"token": token if token is not None else self.token} if (token or self.token) else {}
        doc = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": context, "cluster": cluster}],
            "users": [{"name": context, "user": user}],
            "contexts": [{"name": context, "context": {"cluster": context, "user": context}}],
            "current-context": context,
        }
        with open(path, "w", encoding="utf-8") as f:
            yaml.safe_dump(doc, f)
        return path

    async def connect(self, directory) -> KubeClient:
        """A client that finds this server the way the controller finds a cluster: a kubeconfig file."""
        return await KubeClient.connect(kubeconfig=self.write_kubeconfig(os.path.join(str(directory), "kubeconfig")))

    def _out(self, o: dict) -> dict:
        return copy.deepcopy(o)

    @staticmethod
    def _selected(o: dict, selector: str | None) -> bool:
        if not selector:
            return True
        labels = o["metadata"].get("labels") or {}
        for term in selector.split(","):
            k, _, v = term.partition("=")
            if labels.get(k) != v:
                return False
        return True

    async def _watch(self, request, group, plural, ns) -> web.StreamResponse:
        since = int(request.query.get("resourceVersion") or self.rv)
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        if since < self.oldest:
            err = {
                "type": "ERROR",
                "object": {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "status": "Failure",
                    "code": 410,
                    "reason": "Expired",
                    "message": f"too old resource version: {since} ({self.oldest})",
                },
            }
            await resp.write(json.dumps(err).encode() + b"\n")
            return resp
        timeout = float(request.query.get("timeoutSeconds") or 300)
        sel = request.query.get("labelSelector")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        pos = since
        epoch = self.epoch
        try:
            while loop.time() < deadline and epoch == self.epoch:
                if pos < self.oldest:
                    err = {
                        "type": "ERROR",
                        "object": {"kind": "Status", "code": 410, "reason": "Expired", "message": "history compacted"},
                    }
                    await resp.write(json.dumps(err).encode() + b"\n")
                    return resp
                for rv, typ, key, obj in list(self.history):
                    if rv <= pos:
                        continue
                    pos = rv
                    g, p = key[0], key[1]
                    n = obj["metadata"].get("namespace", "")
                    if g != group or p != plural or (ns and n != ns) or not self._selected(obj, sel):
                        continue
                    out = copy.deepcopy(obj)
                    out.pop("kind", None)
                    out.pop("apiVersion", None)
                    await resp.write(json.dumps({"type": typ, "object": out}).encode() + b"\n")
                async with self.cond:
                    try:
                        await asyncio.wait_for(self.cond.wait(), timeout=max(0.05, min(1.0, deadline - loop.time())))
                    except TimeoutError:
                        pass
        except (ConnectionResetError, asyncio.CancelledError):
            return resp
        return resp

    async def start(self, ssl_context: ssl.SSLContext | None = None) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0, ssl_context=ssl_context)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        self.url = f"{'https' if ssl_context else 'http'}://127.0.0.1:{self.port}"
        return self.url

    async def stop(self) -> None:
        if self.runner:
            await self.runner.cleanup()
