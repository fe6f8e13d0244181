"""Managed prompt guards: the providers' own moderation services, called per request.

* ``bedrockGuardrails``: AWS Bedrock Guardrails, ``POST /guardrail/{id}/version/{v}/apply``
  on ``bedrock-runtime.{region}.amazonaws.com`` (the ApplyGuardrail API), SigV4-signed
  for the service ``bedrock``. Every text field is one content block (``source`` INPUT
  for prompts, OUTPUT for answers). ``GUARDRAIL_INTERVENED`` with a ``BLOCKED``
  assessment rejects; with only ``ANONYMIZED`` assessments and one output per block
  sent, the outputs replace the texts (masking); any other intervention rejects.
* ``googleModelArmor``: Google Cloud Model Armor, ``templates/{t}:sanitizeUserPrompt``
  (prompts) and ``:sanitizeModelResponse`` (answers) on
  ``modelarmor.{location}.rep.googleapis.com``; the texts joined by newlines; a
  ``MATCH_FOUND`` anywhere in the sanitization result rejects.
* ``azureContentSafety``: Azure AI Content Safety ``text:analyze`` (a category at or
  above ``severityThreshold``, default 2, or a blocklist hit rejects) and, for prompts,
  ``text:detectJailbreak`` (a detected jailbreak rejects).

A guard service that cannot be reached, answers an error or answers something that is
not its documented shape fails the request (502 ``guardrail_failed``): nothing passes
unchecked. Streamed answers are not sent to these services (as agentgateway by default).
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

import orjson
from pydantic import ValidationError

from ...config import models as m
from ...engine.http import GatewayError, encode_headers
from .base import Auth, AwsSigV4, GcpToken, StaticKey, Upstream
from .guards import Rejected, collect_texts, map_texts

if TYPE_CHECKING:
    from ...proxy.scope import CompileScope

DEFAULT_REJECTION = "The request was rejected due to inappropriate content"
GUARD_TIMEOUT = 10.0
MAX_ANSWER = 1 << 22


class ManagedGuard:
    """One call to a guard service per request or answer; see the subclasses."""

    label = "guardrail"

    def __init__(self, target, host: str, auth: Auth, rejection: tuple):
        self.target = target
        self.host = host  # (also read by the Auth classes, as a provider's)
        self.auth = auth
        self.rejection = rejection  # (status, body or None, headers)

    def rejected(self, direction: str) -> Rejected:
        st, body, hdrs = self.rejection
        if body is not None:
            return Rejected(st, body, hdrs, raw=True)
        return Rejected(st, f"{direction} rejected by {self.label}: {DEFAULT_REJECTION}", hdrs)

    async def post(self, backend, path: str, payload: dict) -> dict:
        body = orjson.dumps(payload)
        up = Upstream(path, body)
        base = [("host", self.host), ("content-type", "application/json"), ("accept", "application/json")]
        hdrs = base + list(await self.auth.headers(self, up, base, None))
        hdrs.append(("content-length", str(len(body))))
        head = f"POST {path} HTTP/1.1\r\n".encode() + encode_headers(hdrs) + b"\r\n"
        try:
            conn = await backend.pool.exchange(self.target, head, body, GUARD_TIMEOUT)
            try:
                data = await conn.read_body(MAX_ANSWER)
            finally:
                conn.release()
        except GatewayError as exc:
            raise GatewayError(502, "guardrail_failed", f"{self.label} failed: {exc.message}") from None
        if not 200 <= conn.status < 300:
            snippet = data[:200].decode("utf-8", "replace")
            raise GatewayError(502, "guardrail_failed", f"{self.label} answered {conn.status}: {snippet}")
        try:
            ans = orjson.loads(data)
        except orjson.JSONDecodeError:
            ans = None
        if not isinstance(ans, dict):
            raise GatewayError(502, "guardrail_failed", f"{self.label} answered something other than a JSON object")
        return ans


def _has_action(v: Any, action: str) -> bool:
    if isinstance(v, dict):
        return v.get("action") == action or any(_has_action(x, action) for x in v.values())
    if isinstance(v, list):
        return any(_has_action(x, action) for x in v)
    return False


class BedrockGuardrail(ManagedGuard):
    label = "bedrock guardrail"

    def __init__(self, target, host, auth, rejection, identifier: str, version: str):
        super().__init__(target, host, auth, rejection)
        self.path = f"/guardrail/{quote(identifier, safe='')}/version/{quote(version, safe='')}/apply"

    async def apply(self, ctx, body, api: str, direction: str, backend) -> bool:
        texts = collect_texts(body, api, direction)
        if not texts:
            return False
        ans = await self.post(
            backend,
            self.path,
            {
                "source": "INPUT" if direction == "request" else "OUTPUT",
                "content": [{"text": {"text": t}} for t in texts],
            },
        )
        if ans.get("action") != "GUARDRAIL_INTERVENED":
            return False
        assessments = ans.get("assessments") or []
        if not _has_action(assessments, "BLOCKED") and _has_action(assessments, "ANONYMIZED"):
            outputs = [o.get("text") if isinstance(o, dict) else None for o in ans.get("outputs") or []]
            if len(outputs) == len(texts) and all(isinstance(o, str) for o in outputs):
                it = iter(outputs)
                map_texts(body, api, lambda s: next(it), direction)
                return True
        raise self.rejected(direction)


def _match_found(v: Any) -> bool:
    if isinstance(v, dict):
        return v.get("matchState") == "MATCH_FOUND" or any(_match_found(x) for x in v.values())
    if isinstance(v, list):
        return any(_match_found(x) for x in v)
    return False


class ModelArmorGuard(ManagedGuard):
    label = "google model armor"

    def __init__(self, target, host, auth, rejection, project: str, location: str, template: str):
        super().__init__(target, host, auth, rejection)
        self.base = (
            f"/v1/projects/{quote(project, safe='')}/locations/{quote(location, safe='')}"
            f"/templates/{quote(template, safe='')}"
        )

    async def apply(self, ctx, body, api: str, direction: str, backend) -> bool:
        texts = collect_texts(body, api, direction)
        if not texts:
            return False
        text = "\n".join(texts)
        if direction == "request":
            ans = await self.post(backend, self.base + ":sanitizeUserPrompt", {"userPromptData": {"text": text}})
        else:
            ans = await self.post(backend, self.base + ":sanitizeModelResponse", {"modelResponseData": {"text": text}})
        result = ans.get("sanitizationResult")
        if isinstance(result, dict) and (
            result.get("filterMatchState") == "MATCH_FOUND" or _match_found(result.get("filterResults"))
        ):
            raise self.rejected(direction)
        return False


class AzureContentSafetyGuard(ManagedGuard):
    label = "azure content safety"

    def __init__(self, target, host, auth, rejection, analyze: dict | None, jailbreak: dict | None):
        super().__init__(target, host, auth, rejection)
        self.analyze = None
        if analyze is not None:
            q = urlencode({"api-version": analyze.get("apiVersion") or "2024-09-01"})
            extra: dict[str, Any] = {}
            if analyze.get("blocklistNames"):
                extra["blocklistNames"] = list(analyze["blocklistNames"])
            if analyze.get("haltOnBlocklistHit") is not None:
                extra["haltOnBlocklistHit"] = bool(analyze["haltOnBlocklistHit"])
            threshold = analyze.get("severityThreshold")
            self.analyze = (f"/contentsafety/text:analyze?{q}", extra, 2 if threshold is None else int(threshold))
        self.jailbreak = None
        if jailbreak is not None:
            q = urlencode({"api-version": jailbreak.get("apiVersion") or "2024-02-15-preview"})
            self.jailbreak = f"/contentsafety/text:detectJailbreak?{q}"

    async def apply(self, ctx, body, api: str, direction: str, backend) -> bool:
        texts = collect_texts(body, api, direction)
        if not texts:
            return False
        text = "\n".join(texts)
        if self.analyze is not None:
            path, extra, threshold = self.analyze
            ans = await self.post(backend, path, {"text": text, **extra})
            cats = ans.get("categoriesAnalysis") or []
            if ans.get("blocklistsMatch") or any(
                isinstance(c, dict) and int(c.get("severity") or 0) >= threshold for c in cats
            ):
                raise self.rejected(direction)
        if self.jailbreak is not None and direction == "request":
            ans = await self.post(backend, self.jailbreak, {"text": text})
            if (ans.get("jailbreakAnalysis") or {}).get("detected") is True:
                raise self.rejected(direction)
        return False


class AzureClientSecret(Auth):
    """An Azure AD token for Cognitive Services from a service principal's secret
    (``AZURE_TENANT_ID``, ``AZURE_CLIENT_ID``, ``AZURE_CLIENT_SECRET``; the authority
    from ``AZURE_AUTHORITY_HOST``, by default ``https://login.microsoftonline.com``),
    fetched on first use and again five minutes before it expires."""

    def __init__(self, pool_of, compile_target):
        env = os.environ
        self.tenant = env.get("AZURE_TENANT_ID")
        self.client_id = env.get("AZURE_CLIENT_ID")
        self.secret = env.get("AZURE_CLIENT_SECRET")
        authority = (env.get("AZURE_AUTHORITY_HOST") or "https://login.microsoftonline.com").rstrip("/")
        self.target, self.host = compile_target(authority)
        self.pool_of = pool_of
        self.token: str | None = None
        self.expiry = 0.0
        self._inflight: asyncio.Future | None = None

    async def headers(self, provider, up, base_headers, client_headers) -> list:
        if self.token is None or time.time() > self.expiry - 300:
            # one token request at a time; requests meanwhile wait for it
            if self._inflight is None or self._inflight.done():
                self._inflight = asyncio.ensure_future(self._fetch())
            await asyncio.shield(self._inflight)
        return [("authorization", f"Bearer {self.token}")]

    async def _fetch(self) -> None:
        if not (self.tenant and self.client_id and self.secret):
            raise GatewayError(
                503,
                "azure_credentials_unavailable",
                "no Azure credentials for the content safety guard: set AZURE_TENANT_ID, AZURE_CLIENT_ID and "
                "AZURE_CLIENT_SECRET, or policies.backendAuth.key",
            )
        form = urlencode(
            {
                "grant_type": "client_credentials",
                "client_id": self.client_id,
                "client_secret": self.secret,
                "scope": "https://cognitiveservices.azure.com/.default",
            }
        ).encode()
        path = f"/{quote(self.tenant, safe='')}/oauth2/v2.0/token"
        hdrs = [
            ("host", self.host),
            ("content-type", "application/x-www-form-urlencoded"),
            ("accept", "application/json"),
            ("content-length", str(len(form))),
        ]
        head = f"POST {path} HTTP/1.1\r\n".encode() + encode_headers(hdrs) + b"\r\n"
        try:
            conn = await self.pool_of().exchange(self.target, head, form, GUARD_TIMEOUT)
            try:
                data = await conn.read_body(1 << 20)
            finally:
                conn.release()
        except GatewayError as exc:
            raise GatewayError(
                503, "azure_credentials_unavailable", f"Azure token request failed: {exc.message}"
            ) from None
        try:
            ans = orjson.loads(data)
        except orjson.JSONDecodeError:
            ans = None
        if conn.status != 200 or not isinstance(ans, dict) or not isinstance(ans.get("access_token"), str):
            raise GatewayError(503, "azure_credentials_unavailable", f"Azure token request answered {conn.status}")
        self.token = ans["access_token"]
        self.expiry = time.time() + float(ans.get("expires_in") or 3600)


# -- compile --------------------------------------------------------------------------------
_KINDS = ("bedrockGuardrails", "googleModelArmor", "azureContentSafety")
_FIELDS = {
    "bedrockGuardrails": {"guardrailIdentifier", "guardrailVersion", "region", "policies"},
    "googleModelArmor": {"templateId", "projectId", "location", "policies"},
    "azureContentSafety": {"endpoint", "policies", "analyzeText", "detectJailbreak"},
}
_AUTH_FOR = {"bedrockGuardrails": "aws", "googleModelArmor": "gcp", "azureContentSafety": "key"}


def _endpoint_override(kind: str) -> str | None:
    env = os.environ
    if kind == "bedrockGuardrails":
        return env.get("AWS_ENDPOINT_URL_BEDROCK_RUNTIME") or env.get("AWS_ENDPOINT_URL") or None
    if kind == "googleModelArmor":
        return env.get("AGENTGW_MODEL_ARMOR_ENDPOINT") or None
    return None


def managed_factory(c: CompileScope):
    """``make(kind, spec, path, rejection)`` → a guard, or None with the errors reported."""
    from ..http import make_target

    def pool_of():
        return c.services.pool

    def target_for(origin: str, tls_ctx, tls_key: str, path: str):
        try:
            t, host = make_target(origin, tls=tls_ctx, sni=None, connect_timeout=c.connect_timeout, tls_key=tls_key)
        except (ValueError, IndexError) as exc:
            c.errors.add(path, f"invalid address {origin!r}: {exc}")
            t, host = make_target("127.0.0.1:1", tls=None, sni=None, connect_timeout=1.0)
        return t, host or t.authority

    def make(kind: str, spec, path: str, rejection: tuple):
        kp = f"{path}.{kind}"
        if not isinstance(spec, dict):
            c.errors.add(kp, "expected an object")
            return None
        ok = True
        for k in spec:
            if k not in _FIELDS[kind]:
                c.errors.add(f"{kp}.{k}", "unknown field")
                ok = False
        pol = spec.get("policies") or {}
        if not isinstance(pol, dict):
            c.errors.add(f"{kp}.policies", "expected an object")
            return None
        auth_cfg = tls_cfg = None
        for k, v in pol.items():
            try:
                if k == "backendAuth":
                    auth_cfg = m.BackendAuth.model_validate(v)
                elif k == "backendTLS":
                    tls_cfg = m.BackendTLS.model_validate(v)
                else:
                    c.errors.add(f"{kp}.policies.{k}", f"not supported for {kind} guards (backendAuth, backendTLS)")
                    ok = False
            except ValidationError as exc:
                c.errors.add(f"{kp}.policies.{k}", exc.errors()[0]["msg"])
                ok = False
        tls_ctx, tls_key = None, ""
        if tls_cfg is not None:
            tls_ctx, tls_key = c.backend_tls(tls_cfg, f"{kp}.policies.backendTLS")

        def need(name: str) -> str:
            nonlocal ok
            v = spec.get(name)
            if not isinstance(v, str) or not v:
                c.errors.add(f"{kp}.{name}", "required (a string)")
                ok = False
                return ""
            return v

        auth: Auth | None = None
        aws_cfg = None
        apath = f"{kp}.policies.backendAuth"
        if auth_cfg is not None:
            own = _AUTH_FOR[kind] if kind != "azureContentSafety" else "key"
            given = sorted(auth_cfg.model_fields_set)
            if given not in (["key"], [own]) or getattr(auth_cfg.key, "location", None) is not None:
                c.errors.add(apath, f"{kind} guards take backendAuth.key or backendAuth.{own} (only)")
                return None
            if auth_cfg.key is not None:
                from .compile import _read_secret

                key = _read_secret(c, auth_cfg.key, f"{apath}.key") or ""
                if kind == "azureContentSafety":
                    auth = StaticKey([("ocp-apim-subscription-key", key)])
                else:
                    auth = StaticKey([("authorization", f"Bearer {key}")])
            elif auth_cfg.aws is not None and kind == "bedrockGuardrails":
                aws_cfg = auth_cfg.aws  # signed below, with the guardrail's region
            elif auth_cfg.gcp is not None and kind == "googleModelArmor":
                cred = auth_cfg.gcp.credential
                f = getattr(cred, "file", None) if cred is not None and not isinstance(cred, str) else None
                if isinstance(cred, str):
                    c.errors.add(
                        f"{apath}.gcp.credential", "an inline credential is not supported yet; use {file: path}"
                    )
                if auth_cfg.gcp.type == "idToken":
                    c.errors.add(f"{apath}.gcp.type", "Model Armor takes an access token, not an ID token")
                auth = GcpToken(c.path(f) if f else None)
            else:
                c.errors.add(apath, f"{kind} guards take backendAuth.key or backendAuth.{_AUTH_FOR[kind]}")
                return None

        if kind == "bedrockGuardrails":
            ident, version, region = need("guardrailIdentifier"), need("guardrailVersion"), need("region")
            if not ok:
                return None
            origin = _endpoint_override(kind) or f"https://bedrock-runtime.{region}.amazonaws.com"
            target, host = target_for(origin, tls_ctx, tls_key, kp)
            if auth is None:
                from ..aws import shared_source

                a = aws_cfg
                reg = (a.region if a is not None else None) or region
                src = shared_source(
                    access_key_id=a.access_key_id if a else None,
                    secret_access_key=a.secret_access_key if a else None,
                    session_token=a.session_token if a else None,
                    region=reg,
                    role_arn=a.assume_role.role_arn if a and a.assume_role else None,
                )
                auth = AwsSigV4(src, reg, (a.service_name if a else None) or "bedrock")
            return BedrockGuardrail(target, host, auth, rejection, ident, version)
        if kind == "googleModelArmor":
            template, project = need("templateId"), need("projectId")
            location = spec.get("location") or "us-central1"
            if not isinstance(location, str):
                c.errors.add(f"{kp}.location", "expected a string")
                ok = False
            if not ok:
                return None
            origin = _endpoint_override(kind) or f"https://modelarmor.{location}.rep.googleapis.com"
            target, host = target_for(origin, tls_ctx, tls_key, kp)
            return ModelArmorGuard(target, host, auth or GcpToken(None), rejection, project, location, template)
        # azureContentSafety
        endpoint = need("endpoint").rstrip("/")
        analyze, jailbreak = spec.get("analyzeText"), spec.get("detectJailbreak")
        for name, v, fields in (
            ("analyzeText", analyze, {"severityThreshold", "apiVersion", "blocklistNames", "haltOnBlocklistHit"}),
            ("detectJailbreak", jailbreak, {"apiVersion"}),
        ):
            if v is None:
                continue
            if not isinstance(v, dict):
                c.errors.add(f"{kp}.{name}", "expected an object")
                ok = False
                continue
            for k in v:
                if k not in fields:
                    c.errors.add(f"{kp}.{name}.{k}", "unknown field")
                    ok = False
        if isinstance(analyze, dict) and analyze.get("severityThreshold") is not None:
            st = analyze["severityThreshold"]
            if not isinstance(st, int) or isinstance(st, bool) or not 0 <= st <= 7:
                c.errors.add(f"{kp}.analyzeText.severityThreshold", "expected an integer from 0 to 7")
                ok = False
        if analyze is None and jailbreak is None:
            c.errors.add(kp, "needs analyzeText, detectJailbreak or both")
            ok = False
        if jailbreak is not None and ".response[" in path:
            c.errors.add(f"{kp}.detectJailbreak", "jailbreak detection only applies to request guards")
            ok = False
        if not ok:
            return None
        # an endpoint written with http:// (a local stand-in) is used as written; otherwise https
        origin = endpoint if endpoint.startswith(("http://", "https://")) else f"https://{endpoint}"
        target, host = target_for(origin, tls_ctx, tls_key, f"{kp}.endpoint")
        if auth is None:
            auth = AzureClientSecret(pool_of, lambda a: target_for(a, None, "", f"{kp}.policies"))
        return AzureContentSafetyGuard(target, host, auth, rejection, analyze, jailbreak)

    return make


KINDS = _KINDS
