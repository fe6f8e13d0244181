"""The ``a2a`` route policy: A2A discovery, parsing, metrics and JSON-RPC errors.

Compiled for a route with ``policies.a2a`` or an ``a2a`` backend. Per request:

* ``GET …/.well-known/agent-card.json`` (or the older ``agent.json``), and the extended
  card (``GET …/card``, ``GET …/extendedAgentCard``, or the JSON-RPC
  ``agent/getAuthenticatedExtendedCard`` / ``GetExtendedAgentCard``): the response is
  buffered and its URLs rewritten to the gateway's address (``ctx.body_filter``).
* JSON-RPC and HTTP+JSON calls: the method, task id and context id are read from the
  buffered body (one ``orjson.loads``; the forwarded bytes are the client's) and put in
  ``ctx.attrs["a2a"]`` for authorization rules (CEL ``a2a.method``, ``a2a.agent``, …)
  and in the access log; the response is watched as it streams
  (``ctx.body_observer``) for the final task state.
* gRPC calls (HTTP/2, ``content-type: application/grpc*``, the A2A gRPC binding): the method
  is the ``:path``'s (``/lf.a2a.v1.A2AService/SendMessage`` → ``SendMessage``; 0.3's
  ``/a2a.v1.A2AService/…`` too, its operation named as 1.0 names it); the task and
  context ids are read from the request message, and the response's frames are watched
  for the last task state (backends/a2a/grpc.py). Nothing is parsed as JSON.
* Gateway-generated errors on a JSON-RPC call (authentication, authorization, rate
  limits, upstream failures) are sent as JSON-RPC error objects, keeping the HTTP
  status, through ``ctx.attrs["reply_shaper"]``. On a gRPC call they are gRPC statuses
  (``Ctx.respond``): no shaper is installed.
* ``agentgw_a2a_requests_total{agent, method, status}`` counts every response;
  ``agentgw_a2a_task_states_total{agent, state}`` counts the last task state seen.
"""

from __future__ import annotations

from ..backends.a2a.card import (
    CardRewriter,
    card_in,
    card_validators,
    grpc_route_probe,
    is_card_path,
    path_prefixes,
    rewrite_card_body,
)
from ..backends.a2a.grpc import GrpcResponseObserver, first_message, grpc_method, request_facts
from ..backends.a2a.rpc import (
    CARD_OPERATIONS,
    ResponseObserver,
    parse_body,
    parse_jsonrpc,
    rest_operation,
    shape_reply,
)
from ..backends.a2a.signing import UNSIGNED, CardSigner, CardSigning, CardVerifier
from ..engine.grpc import is_grpc_call
from ..engine.http import GatewayError
from ..proxy.origin import client_origin
from ..proxy.policy import Policy
from ..telemetry.metrics import status_label

CARD = "agent-card"
#: the gRPC methods whose request message names a task or context (read before relaying)
_GRPC_REQUEST_IDS = frozenset(
    ("SendMessage", "SendStreamingMessage", "GetTask", "CancelTask", "SubscribeToTask", "TaskSubscription")
)


def _shape(ctx, reply):
    rpc = ctx.attrs.get("a2a.rpc")
    if rpc is None:
        if ctx.attrs.get("a2a") is not None:
            return reply  # parsed: not JSON-RPC
        body = ctx.req.body
        if not body.complete or body.error is not None:
            return reply
        facts = parse_jsonrpc(parse_body(body.buffered()))
        if facts is None:
            return reply
        rpc = facts
    return shape_reply(rpc["rpc_id"], reply)


class A2aErrorShape(Policy):
    """Runs first on an A2A route so that even authentication failures on a JSON-RPC
    call come back as JSON-RPC errors."""

    order = 1

    def on_request(self, ctx):
        req = ctx.req
        if req.method == "POST" and not is_grpc_call(req):  # (a gRPC call's errors: gRPC statuses)
            ctx.attrs["reply_shaper"] = _shape
            body = req.body
            if not body.complete and body.error is None:
                # an early refusal must still carry the call's id: have the (bounded)
                # body in hand before any policy can refuse
                return self._read(ctx)
        return None

    @staticmethod
    async def _read(ctx):
        await ctx.req.body.read_all()  # too large: 413, as a JSON-RPC error
        return None


class A2a(Policy):
    # after authentication (jwtAuth/apiKey/basicAuth/extAuthz), before authorization
    order = 35
    edits_response_headers = False  # on_response reads status and content-type only

    def __init__(self, agent: str, metrics=None, card_paths: frozenset[str] = frozenset(), signing=UNSIGNED):
        if metrics is None:  # validation only: nothing is served
            from ..telemetry.metrics import Metrics

            metrics = Metrics()
        self.agent = agent
        self.card_paths = card_paths
        self.signing: CardSigning = signing
        self.requests = metrics.counter(
            "agentgw_a2a_requests_total",
            "A2A requests by agent, method (JSON-RPC method or HTTP+JSON operation) and HTTP status",
            ("agent", "method", "status"),
        )
        self.states = metrics.counter(
            "agentgw_a2a_task_states_total",
            "Last task state seen in A2A responses, by agent",
            ("agent", "state"),
        )
        self._finish = self._done  # bound once, not per request

    # -- request ------------------------------------------------------------------------
    def on_request(self, ctx):
        req = ctx.req
        # what authorization rules see as ``a2a.*``; taskId/contextId only when known
        a = {"agent": self.agent, "method": "", "operation": ""}
        ctx.attrs["a2a"] = a
        log = ctx.attrs.get("log")
        if log is None:
            log = ctx.attrs["log"] = {}
        log["a2a_agent"] = self.agent
        m = req.method
        if m == "GET" and (is_card_path(ctx.path) or ctx.path in self.card_paths):
            a["method"] = a["operation"] = CARD
            log["a2a_method"] = CARD
            self._card_filter(ctx, jsonrpc=False)
            return None
        if m == "POST" and is_grpc_call(req):
            return self._grpc(ctx, a, log)
        if m == "POST":
            body = req.body
            if body.complete and body.error is None:
                self._classify(ctx, a, log, body.buffered())
                return None
            return self._read_then_classify(ctx, a, log)
        rest = rest_operation(m, ctx.path)
        if rest is not None:
            self._rest(ctx, a, log, rest, None)
        return None

    async def _read_then_classify(self, ctx, a, log):
        data = await ctx.req.body.read_all()
        self._classify(ctx, a, log, data)
        return None

    def _classify(self, ctx, a, log, data: bytes) -> None:
        doc = parse_body(data)
        facts = parse_jsonrpc(doc)
        if facts is not None:
            ctx.attrs["a2a.rpc"] = facts
            a["method"] = facts["method"]
            a["operation"] = op = facts["operation"]
            if facts["task_id"]:
                a["taskId"] = facts["task_id"]
            if facts["context_id"]:
                a["contextId"] = facts["context_id"]
            log["a2a_method"] = facts["method"]
            rid = facts["rpc_id"]
            if rid is not None:
                log["a2a_rpc_id"] = rid if isinstance(rid, (str, int)) else str(rid)
            if facts["task_id"]:
                log["a2a_task_id"] = facts["task_id"]
            if facts["context_id"]:
                log["a2a_context_id"] = facts["context_id"]
            if op in CARD_OPERATIONS:
                self._card_filter(ctx, jsonrpc=True)
            else:
                ctx.body_observer = ResponseObserver(self._finish, ctx.attrs)
            return
        rest = rest_operation("POST", ctx.path)
        if rest is not None:
            self._rest(ctx, a, log, rest, doc)

    def _rest(self, ctx, a, log, rest, doc) -> None:
        op, task = rest
        a["method"] = a["operation"] = op
        log["a2a_method"] = op
        if isinstance(doc, dict):
            msg = doc.get("message")
            if isinstance(msg, dict):
                task = task or msg.get("taskId")
                if isinstance(msg.get("contextId"), str):
                    a["contextId"] = log["a2a_context_id"] = msg["contextId"]
        if isinstance(task, str):
            a["taskId"] = log["a2a_task_id"] = task
        if op in CARD_OPERATIONS:
            self._card_filter(ctx, jsonrpc=False)
        else:
            ctx.body_observer = ResponseObserver(self._finish, ctx.attrs)

    def _grpc(self, ctx, a, log):
        """A gRPC call: the method from the path; ids from the request message (its
        single message: every A2A method takes one), read once whole, as a JSON-RPC body
        is."""
        call = grpc_method(ctx.path)
        if call is None:
            return None  # not A2A's service (health checks, reflection): relayed as is
        service, method, op = call
        a["method"] = method
        a["operation"] = op
        log["a2a_method"] = method
        if GrpcResponseObserver.wanted(op):
            ctx.body_observer = GrpcResponseObserver(op, self._finish, ctx.attrs)
        if method not in _GRPC_REQUEST_IDS:
            return None
        body = ctx.req.body
        if body.complete and body.error is None:
            self._grpc_ids(ctx, a, log, service, method, body.buffered())
            return None
        return self._read_grpc_ids(ctx, a, log, service, method)

    async def _read_grpc_ids(self, ctx, a, log, service, method):
        data = await ctx.req.body.read_all()
        self._grpc_ids(ctx, a, log, service, method, data)
        return None

    @staticmethod
    def _grpc_ids(ctx, a, log, service, method, data: bytes) -> None:
        """The task and context ids the call's request names, for authorization rules and
        logs, read as the agent will read them; a request that can't be read so is
        refused (INVALID_ARGUMENT) rather than relayed unread."""
        try:
            msg = first_message(data, ctx.req.headers.get("grpc-encoding"), ctx.req.body.limit)
            task, ctxid = request_facts(service, method, msg)
        except (ValueError, IndexError):
            raise GatewayError(400, "invalid_grpc_message", f"the {method} request message can't be read") from None
        if task:
            a["taskId"] = log["a2a_task_id"] = task
        if ctxid:
            a["contextId"] = log["a2a_context_id"] = ctxid

    def _card_filter(self, ctx, *, jsonrpc: bool) -> None:
        client_path = ctx.path
        h = ctx.req.headers
        h.remove("accept-encoding")  # rewrite needs the plain body
        # the client's validators name the rewritten card, not the agent's: the agent is
        # asked for the whole card and the gateway answers the condition itself
        conditions = None if jsonrpc else (h.get("if-none-match"), h.get("if-modified-since"))
        h.remove("if-none-match")
        h.remove("if-modified-since")

        signing = self.signing
        agent = self.agent

        def agent_routes(route) -> bool:
            """Whether ``route`` is an A2A route of this agent (its ``a2a`` policy's name)."""
            for p in getattr(route, "policies", ()):
                if p.__class__ is A2a:
                    return p.agent == agent
            return False

        def body_filter(ctx, status, headers, body):
            # ctx.path is now the upstream path (after urlRewrite)
            cp, up = path_prefixes(client_path, ctx.path)
            trusted = ctx.bind.trusts(ctx.req.client_addr)
            origin = client_origin(ctx.req, trusted)
            listener = ctx.listener
            if listener is None:
                rw = CardRewriter(origin, cp, up)
            else:  # gRPC interfaces are kept when this listener routes gRPC calls to this agent
                routable = grpc_route_probe(listener.routes, ctx.req.host, agent_routes)
                rw = CardRewriter(origin, cp, up, routable)
            body = rewrite_card_body(rw, status, headers, body, jsonrpc=jsonrpc, signing=signing)
            if conditions is None or status != 200:
                return status, body
            return card_validators(headers, body, conditions, trusted)

        if signing.verifier is None:
            ctx.body_filter = body_filter
            return
        verifier = signing.verifier

        async def verified(ctx, status, headers, body):
            card = card_in(status, headers, body, jsonrpc=jsonrpc)
            if card is not None:  # the agent's card, before anything touches it
                await verifier.verify(card, ctx.bind.services.pool)
            return body_filter(ctx, status, headers, body)

        ctx.body_filter = verified

    # -- response -----------------------------------------------------------------------
    def on_response(self, ctx, status, headers) -> None:
        a = ctx.attrs.get("a2a")
        self.requests.inc((self.agent, a["method"] if a is not None else "", status_label(status)))
        obs = ctx.body_observer
        if obs.__class__ is ResponseObserver:
            ct = headers.get("content-type") or ""
            obs.sse = ct.startswith("text/event-stream")
        elif obs.__class__ is GrpcResponseObserver:
            obs.encoding = headers.get("grpc-encoding")

    def _done(self, attrs: dict, facts: dict) -> None:
        if not facts:
            return
        log = attrs["log"]
        a = attrs["a2a"]
        tid = facts.get("task_id")
        if tid:
            log["a2a_task_id"] = tid
            a.setdefault("taskId", tid)
        cid = facts.get("context_id")
        if cid:
            log["a2a_context_id"] = cid
            a.setdefault("contextId", cid)
        state = facts.get("state")
        if state:
            log["a2a_task_state"] = state
            self.states.inc((self.agent, state))
        code = facts.get("error_code")
        if code is not None:
            log["a2a_error_code"] = code
        outcome = facts.get("outcome")
        if outcome:
            log["a2a_response_outcome"] = outcome
        kind = facts.get("result_kind")
        if kind:
            log["a2a_result_kind"] = kind


def compile_a2a(scope, agent: str, cfg, path: str, metrics) -> list[Policy]:
    """The policy objects an A2A route runs (``cfg``: its ``a2a`` policy, if written)."""
    paths: frozenset[str] = frozenset(cfg.card_paths or ()) if cfg is not None else frozenset()
    signing = UNSIGNED
    cs = cfg.card_signing if cfg is not None else None
    if cs is not None:
        signing = _card_signing(scope, cs, f"{path}.cardSigning")
    return [A2aErrorShape(), A2a(agent, metrics, paths, signing)]


def _card_signing(scope, cs, path: str) -> CardSigning:
    from .backend_auth import compile_signer
    from .jwt_auth import build_jwks

    signer = verifier = None
    if cs.signing_key is not None:
        key = compile_signer(scope, cs.signing_key, cs.alg, None, f"{path}.signingKey")
        if key is not None:
            signer = CardSigner(key, cs.kid or "", cs.jku)
    if cs.agent_keys is not None:
        try:
            verifier = CardVerifier(build_jwks(cs.agent_keys, scope.path))
        except (OSError, ValueError) as exc:
            scope.errors.add(f"{path}.agentKeys", f"cannot load the keys: {exc}")
    return CardSigning(signer, verifier)
