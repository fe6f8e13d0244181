"""Helpers for the identity tests: real keys and tokens, and small in-process servers
(JWKS, TokenReview, HTTP and gRPC authorizers) on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, OKPKey, RSAKey

from jwcrypto import tests as jwcrypto_vectors  # RFC 7515 appendix A vectors

RFC7515_A2 = jwcrypto_vectors.A2_example  # RS256, key with private part
RFC7515_A3 = jwcrypto_vectors.A3_example  # ES256


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def rfc_compact(example: dict) -> str:
    """The compact JWS of an RFC 7515 appendix A example, exactly as in the RFC."""
    return ".".join([b64url(example["protected"].encode()), b64url(example["payload"]), b64url(example["signature"])])


def rfc_key(example: dict, kid: str | None = None):
    k = dict(example["key"])
    if kid:
        k["kid"] = kid
    cls = RSAKey if k["kty"] == "RSA" else ECKey
    return cls.import_key(k)


def public_jwks(*keys) -> dict:
    return KeySet(list(keys)).as_dict(private=False)


def sign(key, claims: dict, alg: str = "RS256", kid: str | None = "auto", header: dict | None = None) -> str:
    h = {"alg": alg, "typ": "JWT"}
    if kid == "auto":
        kid = key.kid
    if kid:
        h["kid"] = kid
    if header:
        h.update(header)
    return jwt.encode(h, claims, key, algorithms=[alg])


def claims(iss="https://issuer.test", aud="agentgw", sub="agent-1", ttl=600, **extra) -> dict:
    now = int(time.time())
    c = {"iss": iss, "aud": aud, "sub": sub, "iat": now, "exp": now + ttl}
    c.update(extra)
    return c


def unsigned(claims_: dict, alg: str = "none") -> str:
    return f"{b64url(json.dumps({'alg': alg, 'typ': 'JWT'}).encode())}.{b64url(json.dumps(claims_).encode())}."


def hmac_with_public_key(pub_pem: bytes, claims_: dict, kid: str | None = None) -> str:
    """An HS256 token whose secret is the RSA public key PEM (the classic confusion attack)."""
    import hashlib
    import hmac

    h = {"alg": "HS256", "typ": "JWT"}
    if kid:
        h["kid"] = kid
    signing_input = f"{b64url(json.dumps(h).encode())}.{b64url(json.dumps(claims_).encode())}"
    sig = hmac.new(pub_pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(sig)}"


def new_rsa(kid: str):
    return RSAKey.generate_key(2048, parameters={"kid": kid, "use": "sig"})


def new_ec(kid: str):
    return ECKey.generate_key("P-256", parameters={"kid": kid})


def new_ed(kid: str):
    return OKPKey.generate_key("Ed25519", parameters={"kid": kid})


# --------------------------------------------------------------------------------------
# in-process HTTP servers
# --------------------------------------------------------------------------------------
class _Server:
    def __init__(self, handler_cls):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler_cls)
        self.httpd.owner = self
        self.httpd.daemon_threads = True
        self.httpd.handle_error = lambda *a: None  # a client that went away (timeout tests)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        self.requests: list[dict] = []
        self.lock = threading.Lock()

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):  # quiet
        pass

    def _send(self, status: int, body: bytes, headers: dict | None = None):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _record(self, body: bytes = b""):
        owner = self.server.owner
        with owner.lock:
            owner.requests.append(
                {
                    "method": self.command,
                    "path": self.path,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": body,
                }
            )


class JwksServer(_Server):
    """Serves ``self.jwks`` at any path; ``available = False`` answers 503."""

    def __init__(self, jwks: dict, max_age: int | None = None):
        self.jwks = jwks
        self.available = True
        self.max_age = max_age

        class H(_Handler):
            def do_GET(self):
                owner = self.server.owner
                self._record()
                if not owner.available:
                    self._send(503, b"down")
                    return
                hdrs = {"content-type": "application/json"}
                if owner.max_age is not None:
                    hdrs["cache-control"] = f"max-age={owner.max_age}"
                self._send(200, json.dumps(owner.jwks).encode(), hdrs)

        super().__init__(H)

    def fetches(self) -> int:
        return len(self.requests)


class TokenReviewServer(_Server):
    """A stand-in for the API server's TokenReview endpoint: ``tokens`` maps a token to
    (username, audiences); everything else is unauthenticated."""

    def __init__(self, tokens: dict[str, tuple[str, list[str]]], bearer: str | None = None):
        self.tokens = tokens
        self.bearer = bearer

        class H(_Handler):
            def do_POST(self):
                owner = self.server.owner
                n = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(n)
                self._record(body)
                if owner.bearer and self.headers.get("authorization") != f"Bearer {owner.bearer}":
                    self._send(401, b'{"kind":"Status","code":401}', {"content-type": "application/json"})
                    return
                if self.path != "/apis/authentication.k8s.io/v1/tokenreviews":
                    self._send(404, b"{}")
                    return
                req = json.loads(body)
                spec = req["spec"]
                status: dict = {"authenticated": False}
                hit = owner.tokens.get(spec["token"])
                if hit is not None:
                    user, auds = hit
                    want = spec.get("audiences") or []
                    if not want or set(want) & set(auds):
                        status = {
                            "authenticated": True,
                            "user": {
                                "username": user,
                                "uid": "uid-" + user.rsplit(":", 1)[-1],
                                "groups": ["system:serviceaccounts"],
                            },
                            "audiences": [a for a in auds if not want or a in want],
                        }
                out = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": spec, "status": status}
                self._send(201, json.dumps(out).encode(), {"content-type": "application/json"})

        super().__init__(H)


class HttpAuthzServer(_Server):
    """An HTTP authorizer: ``x-user: alice`` is allowed (adds ``x-authz-user``), anything
    else gets 403 with a body; ``/slow`` prefix sleeps past the gateway's timeout."""

    def __init__(self):
        class H(_Handler):
            def _any(self):
                self._record()
                if "/slow" in self.path:
                    time.sleep(1.5)
                user = self.headers.get("x-user")
                if user == "alice":
                    self._send(
                        200, b"", {"x-authz-user": "alice", "x-authz-tier": "gold", "content-type": "text/plain"}
                    )
                else:
                    self._send(
                        403, b'{"denied":"by policy"}', {"content-type": "application/json", "x-authz-reason": "no"}
                    )

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _any

        super().__init__(H)


class GrpcAuthzServer:
    """A real gRPC server implementing envoy.service.auth.v3.Authorization/Check."""

    def __init__(self):
        from concurrent import futures

        import grpc

        from agentgw.policies import ext_authz_proto as pb

        self.requests: list = []

        def check(request, context):
            self.requests.append(request)
            resp = pb.CheckResponse()
            h = request.attributes.request.http
            if h.headers.get("x-user") == "alice":
                resp.status.code = 0
                o = resp.ok_response.headers.add()
                o.header.key = "x-authz-user"
                o.header.value = "alice"
                resp.ok_response.headers_to_remove.append("x-user")
                r = resp.ok_response.response_headers_to_add.add()
                r.header.key = "x-authz-checked"
                r.header.value = "yes"
            else:
                resp.status.code = 7  # PERMISSION_DENIED
                resp.denied_response.status.code = 403
                d = resp.denied_response.headers.add()
                d.header.key = "x-authz-reason"
                d.header.value = "not alice"
                resp.denied_response.body = '{"denied":"grpc policy"}'
            return resp

        handler = grpc.method_handlers_generic_handler(
            "envoy.service.auth.v3.Authorization",
            {
                "Check": grpc.unary_unary_rpc_method_handler(
                    check,
                    request_deserializer=pb.CheckRequest.FromString,
                    response_serializer=pb.CheckResponse.SerializeToString,
                )
            },
        )
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        self.server.add_generic_rpc_handlers((handler,))
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def close(self) -> None:
        self.server.stop(0)


def echo_headers(resp) -> dict[str, list[str]]:
    """The upstream echo's view of the request headers: name -> values."""
    out: dict[str, list[str]] = {}
    for k, v in resp.json()["headers"]:
        out.setdefault(k.lower(), []).append(v)
    return out
