"""OAuth token endpoints for the ``backendAuth`` tests, checking requests as the RFCs say.

* RFC 8693 token exchange: ``grant_type=urn:ietf:params:oauth:grant-type:token-exchange``,
  ``subject_token`` and ``subject_token_type`` required (400 ``invalid_request``
  without), ``actor_token`` only with ``actor_token_type``; the answer carries
  ``access_token``, ``issued_token_type`` and ``token_type`` (RFC 8693 2.2.1).
* RFC 7523 jwt-bearer: ``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`` and one
  ``assertion``.
* Client authentication (RFC 6749 2.3.1): HTTP Basic with form-urlencoded id and secret,
  or ``client_id``/``client_secret`` in the body, never both (400 ``invalid_request``);
  a wrong secret is 401 ``invalid_client``.
* The Identity Assertion Authorization Grant (draft-ietf-oauth-identity-assertion-authz-grant):
  the identity provider exchanges a valid ID token it issued for an ID-JAG (a JWT with
  ``typ: oauth-id-jag+jwt``, ``aud`` the resource authorization server, ``client_id``,
  ``sub``, ``scope``, ``resource``), ``token_type: N_A``; the resource authorization
  server takes an ID-JAG by jwt-bearer only if its signature, ``typ``, ``aud`` and
  ``client_id`` check out, and issues an access token for its ``sub``.

A subject token is only accepted when it is one the test issued (``valid_subjects``), so
a gateway that sent the wrong one is refused, as a real server would.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from urllib.parse import parse_qsl, unquote_plus

from joserfc import jwt
from joserfc.jwk import ECKey, KeySet

from .support import _Handler, _Server

TE = "urn:ietf:params:oauth:grant-type:token-exchange"
JB = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ID_JAG = "urn:ietf:params:oauth:token-type:id-jag"
ACCESS = "urn:ietf:params:oauth:token-type:access_token"


class TokenEndpoint(_Server):
    """``clients``: client_id -> secret. ``mode``: ``exchange`` (RFC 8693 and RFC 7523, an
    opaque token per request), ``idp`` (ID token → ID-JAG) or ``ras`` (ID-JAG → token)."""

    def __init__(self, clients: dict[str, str], mode: str = "exchange", expires_in: int | None = 300):
        self.clients = clients
        self.mode = mode
        self.expires_in = expires_in
        self.valid_subjects: set[str] = set()
        self.jwt_tokens = False
        self.assertion_keys: dict[str, KeySet] = {}  # privateKeyJwt clients: id -> public keys
        self.seen_jti: set[str] = set()
        self.assertion_headers: list[dict] = []
        self.issued: dict[str, dict] = {}  # token -> what it was issued for
        self.key = ECKey.generate_key("P-256", parameters={"kid": f"{mode}-key"})
        self.issuer = ""
        self.trusted_idp: tuple[str, KeySet] | None = None  # (issuer, keys) for mode ras
        self.id_token_keys: KeySet | None = None  # mode idp: keys of the ID tokens it accepts

        class H(_Handler):
            def do_POST(self):
                owner = self.server.owner
                n = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(n)
                self._record(body)
                status, doc = owner.handle(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                self._send(status, json.dumps(doc).encode(), {"content-type": "application/json"})

        super().__init__(H)
        self.issuer = f"http://{self.host}"

    # -- the checks ------------------------------------------------------------------------
    def handle(self, path: str, headers: dict, body: bytes) -> tuple[int, dict]:
        if headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
            return 400, {"error": "invalid_request", "error_description": "not a form"}
        pairs = parse_qsl(body.decode(), keep_blank_values=True)
        form: dict[str, list[str]] = {}
        for k, v in pairs:
            form.setdefault(k, []).append(v)

        def one(name: str) -> str | None:
            vals = form.get(name)
            return vals[0] if vals and len(vals) == 1 else None

        for k, vals in form.items():  # RFC 6749 3.2: parameters sent once (audience/resource may repeat)
            if len(vals) > 1 and k not in ("audience", "resource"):
                return 400, {"error": "invalid_request", "error_description": f"{k} repeated"}
        client = self._client(headers, form)
        if isinstance(client, tuple):
            return client
        grant = one("grant_type")
        if grant == "client_credentials" and self.mode == "exchange" and client != "<anonymous>":
            return 200, self._issue(client, client, form, ACCESS)
        if grant == TE and self.mode in ("exchange", "idp"):
            subject, stype = one("subject_token"), one("subject_token_type")
            if not subject or not stype:
                return 400, {"error": "invalid_request", "error_description": "subject_token and its type required"}
            if ("actor_token" in form) != ("actor_token_type" in form):
                return 400, {"error": "invalid_request", "error_description": "actor_token needs actor_token_type"}
            if self.mode == "idp":
                return self._id_jag(client, subject, stype, form)
            if subject not in self.valid_subjects:
                return 400, {"error": "invalid_grant", "error_description": "unknown subject token"}
            return 200, self._issue(client, subject, form, one("requested_token_type") or ACCESS)
        if grant == JB and self.mode in ("exchange", "ras"):
            assertion = one("assertion")
            if not assertion:
                return 400, {"error": "invalid_request", "error_description": "assertion required"}
            if self.mode == "ras":
                return self._from_jag(client, assertion, form)
            if assertion not in self.valid_subjects:
                return 400, {"error": "invalid_grant", "error_description": "unknown assertion"}
            return 200, self._issue(client, assertion, form, ACCESS)
        return 400, {"error": "unsupported_grant_type"}

    def _client(self, headers: dict, form: dict):
        if "client_assertion" in form:  # RFC 7523 section 2.2 / 3: a signed client assertion
            return self._assertion_client(headers, form)
        auth = headers.get("authorization")
        in_body = "client_id" in form or "client_secret" in form
        if auth is not None and in_body and "client_secret" in form:
            return 400, {"error": "invalid_request", "error_description": "two client authentication methods"}
        if auth is not None:
            scheme, _, cred = auth.partition(" ")
            if scheme.lower() != "basic":
                return 401, {"error": "invalid_client"}
            cid, _, secret = base64.b64decode(cred).decode().partition(":")
            cid, secret = unquote_plus(cid), unquote_plus(secret)
        elif in_body:
            cid, secret = form["client_id"][0], (form.get("client_secret") or [""])[0]
        else:
            return "<anonymous>"
        if self.clients.get(cid) != secret:
            return 401, {"error": "invalid_client"}
        return cid

    def _assertion_client(self, headers: dict, form: dict):
        if "authorization" in headers or "client_secret" in form:
            return 400, {"error": "invalid_request", "error_description": "two client authentication methods"}
        if form.get("client_assertion_type") != ["urn:ietf:params:oauth:client-assertion-type:jwt-bearer"]:
            return 400, {"error": "invalid_request", "error_description": "client_assertion_type"}
        cid = (form.get("client_id") or [""])[0]
        keys = self.assertion_keys.get(cid)
        if keys is None:
            return 401, {"error": "invalid_client"}
        try:
            tok = jwt.decode(form["client_assertion"][0], keys, algorithms=["RS256", "ES256"])
        except Exception as exc:
            tok_err = repr(exc)
            return 401, {"error": "invalid_client", "error_description": f"bad assertion signature {tok_err}"}
        c = tok.claims
        now = time.time()
        if c.get("iss") != cid or c.get("sub") != cid or c.get("aud") != self.issuer + "/token":
            return 401, {"error": "invalid_client", "error_description": f"assertion iss/sub/aud {c}"}
        if not c.get("jti") or c.get("exp", 0) <= now or c["exp"] - now > 600:
            return 401, {"error": "invalid_client", "error_description": "assertion jti/exp"}
        if c["jti"] in self.seen_jti:  # RFC 7523 3: a jti is used once
            return 401, {"error": "invalid_client", "error_description": "assertion replayed"}
        self.seen_jti.add(c["jti"])
        self.assertion_headers.append(tok.header)
        return cid

    def _issue(self, client: str, subject: str, form: dict, issued_type: str) -> dict:
        token = "at-" + secrets.token_urlsafe(12)
        if self.jwt_tokens:  # a JWT access token, as Keycloak issues: sub, aud, exp
            now = int(time.time())
            claims = {"iss": self.issuer, "sub": f"user-of-{subject}", "exp": now + (self.expires_in or 300)}
            claims["aud"] = (form.get("audience") or [client])[0]
            claims["jti"] = secrets.token_hex(6)
            token = jwt.encode({"alg": "ES256", "kid": self.key.kid}, claims, self.key, algorithms=["ES256"])
        self.issued[token] = {"client": client, "subject": subject, "form": form}
        out = {"access_token": token, "issued_token_type": issued_type, "token_type": "Bearer"}
        if self.expires_in is not None:
            out["expires_in"] = self.expires_in
        return out

    def _id_jag(self, client: str, subject: str, stype: str, form: dict) -> tuple[int, dict]:
        if stype != "urn:ietf:params:oauth:token-type:id_token":
            return 400, {"error": "invalid_request", "error_description": "subject must be an ID token"}
        if form.get("requested_token_type") != [ID_JAG]:
            return 400, {"error": "invalid_request", "error_description": "requested_token_type must be id-jag"}
        assert self.id_token_keys is not None
        try:
            tok = jwt.decode(subject, self.id_token_keys, algorithms=["ES256"])
        except Exception:
            return 400, {"error": "invalid_grant", "error_description": "bad ID token"}
        claims = tok.claims
        if claims.get("aud") != client or claims.get("exp", 0) < time.time():
            return 400, {"error": "invalid_grant", "error_description": "ID token not for this client"}
        audience = form.get("audience") or []
        if len(audience) != 1:
            return 400, {"error": "invalid_request", "error_description": "one audience"}
        now = int(time.time())
        jag = {
            "iss": self.issuer,
            "sub": claims["sub"],
            "aud": audience[0],
            "client_id": client,
            "jti": secrets.token_hex(8),
            "iat": now,
            "exp": now + 300,
        }
        if "scope" in form:
            jag["scope"] = form["scope"][0]
        if "resource" in form:
            jag["resource"] = form["resource"][0] if len(form["resource"]) == 1 else form["resource"]
        header = {"alg": "ES256", "typ": "oauth-id-jag+jwt", "kid": self.key.kid}
        token = jwt.encode(header, jag, self.key, algorithms=["ES256"])
        self.issued[token] = jag
        return 200, {
            "access_token": token,
            "issued_token_type": ID_JAG,
            "token_type": "N_A",
            "expires_in": 300,
            "scope": jag.get("scope", ""),
        }

    def _from_jag(self, client: str, assertion: str, form: dict) -> tuple[int, dict]:
        assert self.trusted_idp is not None
        iss, keys = self.trusted_idp
        try:
            tok = jwt.decode(assertion, keys, algorithms=["ES256"])
        except Exception:
            return 400, {"error": "invalid_grant", "error_description": "bad ID-JAG signature"}
        c = tok.claims
        if tok.header.get("typ") != "oauth-id-jag+jwt":
            return 400, {"error": "invalid_grant", "error_description": "not an ID-JAG"}
        if c.get("iss") != iss or c.get("aud") != self.issuer or c.get("exp", 0) < time.time():
            return 400, {"error": "invalid_grant", "error_description": "ID-JAG not for this server"}
        if client == "<anonymous>":
            return 401, {"error": "invalid_client"}
        granted = set((c.get("scope") or "").split())
        asked = set(form["scope"][0].split()) if "scope" in form else granted
        if not asked <= granted:
            return 400, {"error": "invalid_scope"}
        token = "rs-" + secrets.token_urlsafe(12)
        self.issued[token] = {"sub": c["sub"], "scope": " ".join(sorted(asked)), "jag": c}
        return 200, {"access_token": token, "token_type": "Bearer", "expires_in": 300, "scope": " ".join(sorted(asked))}

    def forms(self) -> list[dict[str, list[str]]]:
        out = []
        for r in list(self.requests):
            f: dict[str, list[str]] = {}
            for k, v in parse_qsl(r["body"].decode(), keep_blank_values=True):
                f.setdefault(k, []).append(v)
            out.append(f)
        return out
