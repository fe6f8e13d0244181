"""A stand-in for the Keycloak token endpoints of agentgateway's token-exchange and
cross-app-access examples: ``POST /realms/<realm>/protocol/openid-connect/token`` and
``GET /realms/<realm>/protocol/openid-connect/certs``, one signing key per realm, JWT tokens
shaped as Keycloak's (``iss`` the realm URL, ``sub`` the user id, ``azp`` the client,
``aud``, ``typ``, ``preferred_username``, ``scope``, ``exp``, ``jti``), checked as the RFCs
and Keycloak check them:

* client authentication (RFC 6749 2.3.1): HTTP Basic or ``client_id``/``client_secret`` in
  the form, never both; an unknown client or a wrong secret is 401 ``invalid_client``;
* ``password`` (direct access grant): the realm's user and password; ``scope=openid`` adds
  an ``id_token`` (``aud`` the client);
* ``client_credentials``: a token for the client's service account;
* RFC 8693 token exchange: ``subject_token`` must be a token this realm issued and has not
  expired, ``subject_token_type`` required; ``requested_token_type``
  ``...:access_token`` (the default) gives an access token for the ``audience`` client;
  ``...:id-jag`` (the Identity Assertion Authorization Grant, Keycloak's ID-JAG build) takes
  an ID token issued to the requesting client and gives an ID-JAG (``typ:
  oauth-id-jag+jwt``, ``aud`` the ``audience``, ``client_id`` the resource client whose
  resource-server identifier that audience is, ``scope``);
* RFC 7523 jwt-bearer: the ``assertion`` must be signed by a realm this realm trusts
  (``trust``) with this realm's issuer in its ``aud``, and its ``sub`` linked to a local user
  (``links``); or an ID-JAG of this realm for the authenticated client.

Each request is recorded (``requests``, ``forms()``) with its path and headers.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from urllib.parse import parse_qsl, unquote_plus

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet

from tests.identity.support import _Handler, _Server

TE = "urn:ietf:params:oauth:grant-type:token-exchange"
JB = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ACCESS = "urn:ietf:params:oauth:token-type:access_token"
ID_TOKEN = "urn:ietf:params:oauth:token-type:id_token"
ID_JAG = "urn:ietf:params:oauth:token-type:id-jag"


class Realm:
    def __init__(self, name: str, clients: dict[str, str], users: dict[str, str], **opts):
        self.name = name
        self.clients = clients  # id -> secret
        self.users = users  # username -> password
        self.user_ids = {u: f"{name}-{u}-id" for u in users}
        self.key = ECKey.generate_key("P-256", parameters={"kid": f"{name}-key", "use": "sig"})
        self.trust: list[str] = opts.get("trust", [])  # realms whose assertions it accepts (jwt-bearer)
        self.links: dict[str, str] = opts.get("links", {})  # foreign sub -> local username
        self.resource_servers: dict[str, str] = opts.get("resource_servers", {})  # audience -> client
        self.extra_aud: dict[str, object] = opts.get("extra_aud", {})  # client -> the aud of its tokens
        self.default_scope = opts.get("default_scope", "profile email")
        self.issuer = ""


class Keycloak(_Server):
    def __init__(self, *realms: Realm):
        self.realms = {r.name: r for r in realms}

        class H(_Handler):
            def do_POST(self):
                n = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(n)
                self._record(body)
                status, doc = self.server.owner.token(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                self._send(status, json.dumps(doc).encode(), {"content-type": "application/json"})

            def do_GET(self):
                self._record()
                status, doc = self.server.owner.certs(self.path)
                self._send(status, json.dumps(doc).encode(), {"content-type": "application/json"})

        super().__init__(H)
        self.base = f"http://{self.host}"
        for r in realms:
            r.issuer = f"{self.base}/realms/{r.name}"

    # -- endpoints -------------------------------------------------------------------------
    def _realm(self, path: str, leaf: str) -> Realm | None:
        parts = path.split("?")[0].strip("/").split("/")
        if len(parts) == 5 and parts[0] == "realms" and parts[2:4] == ["protocol", "openid-connect"]:
            if parts[4] == leaf:
                return self.realms.get(parts[1])
        return None

    def certs(self, path: str) -> tuple[int, dict]:
        realm = self._realm(path, "certs")
        if realm is None:
            return 404, {"error": "not found"}
        return 200, KeySet([realm.key]).as_dict(private=False)

    def token(self, path: str, headers: dict, body: bytes) -> tuple[int, dict]:
        realm = self._realm(path, "token")
        if realm is None:
            return 404, {"error": "not found"}
        if headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
            return 400, {"error": "invalid_request", "error_description": "not a form"}
        form: dict[str, list[str]] = {}
        for k, v in parse_qsl(body.decode(), keep_blank_values=True):
            form.setdefault(k, []).append(v)
        for k, vals in form.items():
            if len(vals) > 1 and k not in ("audience", "resource"):
                return 400, {"error": "invalid_request", "error_description": f"{k} repeated"}
        client = self._client(realm, headers, form)
        if isinstance(client, tuple):
            return client
        one = {k: v[0] for k, v in form.items()}
        grant = one.get("grant_type")
        if grant == "password":
            return self._password(realm, client, one)
        if grant == "client_credentials":
            return 200, self._access(realm, client, f"service-account-{client}", one.get("audience") or client, one)
        if grant == TE:
            return self._exchange(realm, client, form, one)
        if grant == JB:
            return self._jwt_bearer(realm, client, one)
        return 400, {"error": "unsupported_grant_type"}

    # -- grants ----------------------------------------------------------------------------
    def _client(self, realm: Realm, headers: dict, form: dict):
        auth = headers.get("authorization")
        if auth is not None and "client_secret" in form:
            return 400, {"error": "invalid_request", "error_description": "two client authentication methods"}
        if auth is not None:
            scheme, _, cred = auth.partition(" ")
            if scheme.lower() != "basic":
                return 401, {"error": "invalid_client"}
            cid, _, secret = base64.b64decode(cred).decode().partition(":")
            cid, secret = unquote_plus(cid), unquote_plus(secret)
        elif "client_id" in form:
            cid, secret = form["client_id"][0], (form.get("client_secret") or [""])[0]
        else:
            return 401, {"error": "invalid_client", "error_description": "no client authentication"}
        if realm.clients.get(cid) != secret:
            return 401, {"error": "invalid_client"}
        return cid

    def _password(self, realm: Realm, client: str, one: dict) -> tuple[int, dict]:
        user = one.get("username", "")
        if realm.users.get(user) != one.get("password"):
            return 401, {"error": "invalid_grant", "error_description": "Invalid user credentials"}
        out = self._access(realm, client, user, None, one)
        if "openid" in one.get("scope", "").split():
            out["id_token"] = self._sign(realm, self._claims(realm, client, user, aud=client, typ="ID"))
        return 200, out

    def _exchange(self, realm: Realm, client: str, form: dict, one: dict) -> tuple[int, dict]:
        subject, stype = one.get("subject_token"), one.get("subject_token_type")
        if not subject or not stype:
            return 400, {"error": "invalid_request", "error_description": "subject_token and its type required"}
        claims = self._verify(realm, subject)
        if claims is None:
            return 400, {"error": "invalid_token", "error_description": "subject token not issued here"}
        user = claims["preferred_username"]
        requested = one.get("requested_token_type", ACCESS)
        audience = form.get("audience") or []
        if requested == ID_JAG:
            if stype != ID_TOKEN or claims.get("typ") != "ID" or claims.get("aud") != client:
                return 400, {"error": "invalid_request", "error_description": "an ID token of this client required"}
            if len(audience) != 1 or audience[0] not in realm.resource_servers:
                return 400, {"error": "invalid_target", "error_description": "unknown resource server"}
            now = int(time.time())
            jag = {
                "iss": realm.issuer,
                "sub": claims["sub"],
                "aud": audience[0],
                "client_id": realm.resource_servers[audience[0]],
                "jti": secrets.token_hex(8),
                "iat": now,
                "exp": now + 300,
                "scope": one.get("scope", ""),
            }
            token = self._sign(realm, jag, typ="oauth-id-jag+jwt")
            return 200, {"access_token": token, "issued_token_type": ID_JAG, "token_type": "N_A", "expires_in": 300}
        if requested != ACCESS or stype != ACCESS:
            return 400, {"error": "invalid_request", "error_description": "unsupported token types"}
        if len(audience) != 1 or audience[0] not in realm.clients:
            return 400, {"error": "invalid_client", "error_description": "audience not found"}
        out = self._access(realm, client, user, audience[0], one)
        out["issued_token_type"] = ACCESS
        return 200, out

    def _jwt_bearer(self, realm: Realm, client: str, one: dict) -> tuple[int, dict]:
        assertion = one.get("assertion")
        if not assertion:
            return 400, {"error": "invalid_request", "error_description": "assertion required"}
        try:
            header = json.loads(base64.urlsafe_b64decode(assertion.split(".")[0] + "=="))
        except ValueError:
            return 400, {"error": "invalid_grant", "error_description": "not a JWT"}
        if header.get("typ") == "oauth-id-jag+jwt":  # an ID-JAG of this realm
            jag = self._verify(realm, assertion, typ="oauth-id-jag+jwt")
            if jag is None or jag["client_id"] != client:
                return 400, {"error": "invalid_grant", "error_description": "ID-JAG not for this client"}
            granted = jag["scope"].split()
            asked = one["scope"].split() if "scope" in one else granted
            if not set(asked) <= set(granted):
                return 400, {"error": "invalid_scope"}
            user = next(u for u, i in realm.user_ids.items() if i == jag["sub"])
            scope = " ".join([*asked, *realm.default_scope.split()])
            return 200, self._access(realm, client, user, None, dict(one, scope=scope), scope_as_is=True)
        for trusted in realm.trust:  # RFC 7523 with a trusted identity provider
            claims = self._verify(self.realms[trusted], assertion)
            if claims is None:
                continue
            aud = claims.get("aud")
            if realm.issuer not in (aud if isinstance(aud, list) else [aud]):
                return 400, {"error": "invalid_grant", "error_description": "assertion audience"}
            user = realm.links.get(claims["sub"])
            if user is None:
                return 400, {"error": "invalid_grant", "error_description": "User not found"}
            return 200, self._access(realm, client, user, one.get("audience"), one)
        return 400, {"error": "invalid_grant", "error_description": "assertion not from a trusted issuer"}

    # -- tokens ----------------------------------------------------------------------------
    def _claims(self, realm: Realm, client: str, user: str, aud, typ: str = "Bearer") -> dict:
        now = int(time.time())
        return {
            "iss": realm.issuer,
            "sub": realm.user_ids.get(user, user),
            "aud": aud,
            "azp": client,
            "typ": typ,
            "preferred_username": user,
            "iat": now,
            "exp": now + 300,
            "jti": secrets.token_hex(8),
        }

    def _access(self, realm: Realm, client: str, user: str, aud, one: dict, scope_as_is: bool = False) -> dict:
        claims = self._claims(realm, client, user, aud or realm.extra_aud.get(client) or client)
        claims["scope"] = one.get("scope", "") if scope_as_is else (one.get("scope") or realm.default_scope)
        return {"access_token": self._sign(realm, claims), "token_type": "Bearer", "expires_in": 300}

    def _sign(self, realm: Realm, claims: dict, typ: str = "JWT") -> str:
        return jwt.encode({"alg": "ES256", "typ": typ, "kid": realm.key.kid}, claims, realm.key, algorithms=["ES256"])

    def _verify(self, realm: Realm, token: str, typ: str | None = None) -> dict | None:
        try:
            tok = jwt.decode(token, KeySet([realm.key]), algorithms=["ES256"])
        except (JoseError, ValueError):
            return None
        c = tok.claims
        if c.get("iss") != realm.issuer or c.get("exp", 0) < time.time():
            return None
        if typ is not None and tok.header.get("typ") != typ:
            return None
        return c

    def forms(self) -> list[dict[str, list[str]]]:
        out = []
        for r in list(self.requests):
            f: dict[str, list[str]] = {}
            for k, v in parse_qsl(r["body"].decode(), keep_blank_values=True):
                f.setdefault(k, []).append(v)
            out.append(f)
        return out


def payload(token: str) -> dict:
    """A JWT's claims, unverified (as the READMEs decode them)."""
    return json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
