"""Config → runtime for LLM traffic: ``ai`` backends on routes, the ``ai`` policy, and
the ``llm:`` shorthand (a bind of its own serving the client-facing APIs).

Provider keys come from, in order: ``backendAuth`` (``key``, ``passthrough``, ``aws``,
``gcp``), ``params.apiKey`` (inline or ``{file}``), then the provider's usual
environment variable (``OPENAI_API_KEY``, ``ANTHROPIC_API_KEY``, ``GEMINI_API_KEY`` /
``GOOGLE_API_KEY``, ``AZURE_OPENAI_API_KEY``; Bedrock: the AWS credential chain or
``AWS_BEARER_TOKEN_BEDROCK``; Vertex: Google application-default credentials). The
client's own ``Authorization`` / ``x-api-key`` is forwarded (in the provider's key header)
only with ``backendAuth.passthrough`` or when none of these gives a key, as agentgateway
passes the client's key through when no backend auth is set. A credential the gateway
itself consumed (jwtAuth, apiKey, basicAuth) is removed before this, so it never reaches
the provider.
"""

from __future__ import annotations

import os
import re
import ssl
from typing import TYPE_CHECKING

from ...config import models as m
from ...engine.client import UpstreamTarget
from ...policies.header_modifier import HeaderEdits
from ..http import make_target
from .anthropic import AnthropicProvider
from .azure import AzureOpenAIProvider
from .backend import AiBackendSet
from .base import AwsSigV4, GcpToken, NoAuth, Passthrough, Provider, StaticKey, split_base_url
from .bedrock import BedrockProvider
from .caching import attach as attach_prompt_caching
from .gemini import GeminiProvider, VertexProvider
from .guards import WebhookGuard, check_guard_options, parse_guard_list
from .health import compile_health
from .managed_guards import managed_factory
from .models import AiPolicy, Candidate, ModelEntry
from .openai import OpenAIProvider
from .presets import PRESETS, PresetProvider
from .references import compile_virtual, each_model
from .transform import Transformation, compile_transformation

if TYPE_CHECKING:
    from ...proxy.scope import CompileScope

# provider key in config → (class, default base URL, default path prefix)
_KINDS = {
    "openai": (OpenAIProvider, "https://api.openai.com", "/v1"),
    "custom": (OpenAIProvider, "", "/v1"),
    "copilot": (OpenAIProvider, "https://api.githubcopilot.com", ""),
    "anthropic": (AnthropicProvider, "https://api.anthropic.com", ""),
    "gemini": (GeminiProvider, "https://generativelanguage.googleapis.com", "/v1beta"),
    "vertex": (VertexProvider, "", "/v1"),
    "bedrock": (BedrockProvider, "", ""),
    "azure": (AzureOpenAIProvider, "", ""),
    "azureopenai": (AzureOpenAIProvider, "", ""),
}
_ENV_KEYS = {
    "openai": ("OPENAI_API_KEY",),
    "anthropic": ("ANTHROPIC_API_KEY",),
    "gemini": ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
    "azure": ("AZURE_OPENAI_API_KEY",),
    "azureopenai": ("AZURE_OPENAI_API_KEY",),
    "bedrock": ("AWS_BEARER_TOKEN_BEDROCK",),
}
_AI_POLICY_KEYS = {
    "promptGuard",
    "defaults",
    "overrides",
    "prompts",
    "modelAliases",
    "routes",
    "promptCaching",
    "transformations",
}
_ROUTE_KINDS = {
    "completions",
    "messages",
    "models",
    "embeddings",
    "responses",
    "anthropicTokenCount",
    "count_tokens",
    "passthrough",
}


def _read_secret(c: CompileScope, v, path: str) -> str | None:
    if v is None:
        return None
    if isinstance(v, str):
        return v
    f = getattr(v, "file", None)
    if f is not None:
        try:
            with open(c.path(f)) as fh:
                return fh.read().strip()
        except OSError as exc:
            c.errors.add(path, f"cannot read key file {f!r}: {exc.strerror or exc}")
            return None
    val = getattr(v, "value", None)
    return _read_secret(c, val, path) if val is not None else None


def _target(
    c: CompileScope, url_origin: str, tls_cfg, path: str, tls_path: str | None = None
) -> tuple[UpstreamTarget, str]:
    tls_ctx, sni, key = None, None, ""
    if tls_cfg is not None:
        tls_ctx, key = c.backend_tls(tls_cfg, tls_path or f"{path}.backendTLS")
        sni = tls_cfg.hostname
    try:
        target, host = make_target(url_origin, tls=tls_ctx, sni=sni, connect_timeout=c.connect_timeout, tls_key=key)
    except (ValueError, IndexError) as exc:
        c.errors.add(path, f"invalid provider address {url_origin!r}: {exc}")
        target, host = make_target("127.0.0.1:1", tls=None, sni=None, connect_timeout=1.0)
    return target, host or target.authority


def make_provider(
    c,
    *,
    name: str,
    kind: str,
    path: str,
    model: str | None = None,
    base_url: str | None = None,
    host_override: str | None = None,
    path_override: str | None = None,
    path_prefix: str | None = None,
    api_key=None,
    auth_cfg: m.BackendAuth | None = None,
    tls_cfg=None,
    region: str | None = None,
    project: str | None = None,
    azure_resource: str | None = None,
    azure_type: str | None = None,
    api_version: str | None = None,
    azure_host: str | None = None,
    guardrail=None,
    auth_path: str | None = None,
    tls_path: str | None = None,
):
    k = kind.lower()
    extra: dict = {}
    preset_prefix = None
    cls: type[Provider]
    if k in PRESETS:  # an OpenAI-compatible service with a known address (its path unless moved)
        cls = PresetProvider
        default_origin, preset_prefix = split_base_url(PRESETS[k][0], "")
        default_prefix = "/v1"
        extra["preset"] = k
    else:
        if k not in _KINDS:
            c.errors.add(path, f"unknown provider {kind!r}")
            k = "openai"
        cls, default_origin, default_prefix = _KINDS[k]
    origin = default_origin
    prefix = default_prefix
    if k == "bedrock":
        if not region:
            c.errors.add(path, "bedrock needs a region")
            region = "us-east-1"
        origin = f"https://bedrock-runtime.{region}.amazonaws.com"
        if guardrail:
            extra["guardrail"] = guardrail
    elif k == "vertex":
        if not project:
            c.errors.add(path, "vertex needs a project")
        region = region or "us-central1"
        extra.update(project=project or "", region=region)
        origin = (
            "https://aiplatform.googleapis.com" if region == "global" else f"https://{region}-aiplatform.googleapis.com"
        )
    elif k in ("azure", "azureopenai"):
        extra["api_version"] = api_version
        if azure_host:
            origin = azure_host if "://" in azure_host else f"https://{azure_host}"
        elif azure_resource:
            dom = (
                "services.ai.azure.com"
                if (azure_type or "").lower() in ("foundry", "aiservices")
                else "openai.azure.com"
            )
            origin = f"https://{azure_resource}.{dom}"
    if base_url:
        origin, prefix = split_base_url(base_url, default_prefix)
    elif host_override:
        origin = host_override
    elif preset_prefix is not None:
        prefix = preset_prefix
    if not origin:
        c.errors.add(path, "needs a baseUrl (or hostOverride)")
        origin = "127.0.0.1:1"
    if path_prefix is not None:
        prefix = path_prefix.rstrip("/")
    scheme_tls = tls_cfg
    if scheme_tls is None and origin.startswith("http://"):
        scheme_tls = None
    target, host = _target(c, origin, scheme_tls, path, tls_path)
    if not host or (host_override and not base_url):
        host = target.authority
    kw = {"preset": extra.pop("preset")} if "preset" in extra else {}
    prov = cls(
        name, target, host, model=model, auth=NoAuth(), prefix=prefix, path_override=path_override, extra=extra, **kw
    )
    prov.auth = _auth(c, prov, k, path, api_key, auth_cfg, region, auth_path or f"{path}.backendAuth")
    return prov


def _auth(c: CompileScope, prov, k: str, path: str, api_key, auth_cfg, region, auth_path: str):
    if auth_cfg is not None:
        for attr, name in (
            ("jwt_sign", "jwtSign"),
            ("oauth_token_exchange", "oauthTokenExchange"),
            ("cross_app_access", "crossAppAccess"),
            ("credentials", "credentials"),
        ):
            if getattr(auth_cfg, attr):
                c.errors.add(f"{auth_path}.{name}", "not supported for ai backends yet")
                return NoAuth()
        if auth_cfg.passthrough is not None and auth_cfg.passthrough.location is not None:
            c.errors.add(
                f"{auth_path}.passthrough.location",
                "not supported for ai backends yet: the client's credential is read from the Authorization header",
            )
        if getattr(auth_cfg.key, "location", None) is not None:
            c.errors.add(
                f"{auth_path}.key.location",
                "sending the backend key elsewhere than the provider's usual header is not supported yet",
            )
        if auth_cfg.passthrough is not None:
            return Passthrough()
        if auth_cfg.key is not None:
            key = _read_secret(c, auth_cfg.key, f"{auth_path}.key")
            return StaticKey(prov.key_headers(key or ""))
        if auth_cfg.aws is not None:
            from ..aws import shared_source

            a = auth_cfg.aws
            reg = a.region or region or "us-east-1"
            src = shared_source(
                access_key_id=a.access_key_id,
                secret_access_key=a.secret_access_key,
                session_token=a.session_token,
                region=reg,
                role_arn=a.assume_role.role_arn if a.assume_role else None,
            )  # resolved on first use
            return AwsSigV4(src, reg, a.service_name or "bedrock")
        if auth_cfg.gcp is not None:
            cred = auth_cfg.gcp.credential
            if isinstance(cred, str):
                c.errors.add(
                    f"{auth_path}.gcp.credential", "an inline credential is not supported yet; use {file: path}"
                )
            f = getattr(cred, "file", None) if cred is not None and not isinstance(cred, str) else None
            return GcpToken(c.path(f) if f else None)
        c.errors.add(f"{auth_path}.azure", "Azure AD authentication is not supported by this agentgw build; use a key")
        return NoAuth()
    key = _read_secret(c, api_key, f"{path}.apiKey")
    if key:
        return StaticKey(prov.key_headers(key))
    for env in _ENV_KEYS.get(k, ()):
        v = os.environ.get(env)
        if v:
            return StaticKey(prov.key_headers(v))
    if k == "bedrock":
        from ..aws import shared_source

        reg = prov.extra.get("region") or region or "us-east-1"
        src = shared_source(region=reg)  # resolved on first use
        return AwsSigV4(src, reg, "bedrock")
    if k == "vertex":
        return GcpToken(None)
    return Passthrough()  # no key of our own: the client's, if it sent one


# -- ai policy ----------------------------------------------------------------------------------
def _webhook_factory(c: CompileScope):
    def make(w: dict, path: str):
        t = w.get("target") or {}
        if not isinstance(t, dict):
            c.errors.add(f"{path}.target", "expected an object")
            return None
        addr = None
        if t.get("host"):
            addr = t["host"]
        elif t.get("service"):
            s = t["service"]
            try:
                addr = f"{s['name']['hostname']}:{s['port']}"
            except (KeyError, TypeError):
                c.errors.add(f"{path}.target.service", "expected {name: {namespace, hostname}, port}")
                return None
        elif t.get("backend"):
            ref = c.named.get(t["backend"])
            if ref is None or ref[1].host is None:
                c.errors.add(f"{path}.target.backend", f"no top-level host backend named {t['backend']!r}")
                return None
            addr = ref[1].host
        else:
            c.errors.add(f"{path}.target", "exactly one of host, service or backend is required")
            return None
        target, host = _target(c, addr, None, f"{path}.target")
        fwd = []
        for hm in w.get("forwardHeaderMatches") or []:
            v = hm.get("value") or {}
            fwd.append(
                (str(hm.get("name", "")).lower(), v.get("exact"), re.compile(v["regex"]) if v.get("regex") else None)
            )
        return WebhookGuard(target, host, fwd)

    return make


def compile_ai_policy(c: CompileScope, opaque, path: str) -> AiPolicy:
    if not opaque:
        return AiPolicy()
    if not isinstance(opaque, dict):
        c.errors.add(path, "expected an object")
        return AiPolicy()
    for k in opaque:
        if k not in _AI_POLICY_KEYS:
            c.errors.add(f"{path}.{k}", "unknown field")
    if opaque.get("transformations") is not None and not isinstance(opaque["transformations"], dict):
        c.errors.add(f"{path}.transformations", "expected a map of field → CEL expression")
    pg = opaque.get("promptGuard") or {}
    wh = _webhook_factory(c)
    mg = managed_factory(c)
    req_g = parse_guard_list(pg.get("request"), f"{path}.promptGuard.request", c.errors, wh, mg)
    resp_g = parse_guard_list(pg.get("response"), f"{path}.promptGuard.response", c.errors, wh, mg)
    check_guard_options(pg, f"{path}.promptGuard", c.errors, resp_g)
    prompts = opaque.get("prompts") or {}
    for side in ("prepend", "append"):
        for i, msg in enumerate(prompts.get(side) or []):
            if not isinstance(msg, dict) or "role" not in msg or "content" not in msg:
                c.errors.add(f"{path}.prompts.{side}[{i}]", "expected {role, content}")
    aliases = opaque.get("modelAliases") or {}
    if not isinstance(aliases, dict) or not all(isinstance(v, str) for v in aliases.values()):
        c.errors.add(f"{path}.modelAliases", "expected a map of model name → model name")
        aliases = {}
    routes = None
    if opaque.get("routes"):
        routes = []
        for suffix, kind in opaque["routes"].items():
            if kind not in _ROUTE_KINDS:
                c.errors.add(f"{path}.routes.{suffix}", f"unknown route type {kind!r}")
                continue
            kind = {"anthropicTokenCount": "count_tokens"}.get(kind, kind)
            if kind == "passthrough":
                c.errors.add(
                    f"{path}.routes.{suffix}", "passthrough routes are not supported by this agentgw build yet"
                )
                continue
            routes.append((suffix, kind))
        routes.sort(key=lambda r: (r[0] == "*", -len(r[0])))
    for k in ("defaults", "overrides"):
        if opaque.get(k) is not None and not isinstance(opaque[k], dict):
            c.errors.add(f"{path}.{k}", "expected an object")
    return AiPolicy(
        request_guards=req_g,
        response_guards=resp_g,
        defaults=opaque.get("defaults"),
        overrides=opaque.get("overrides"),
        prepend=[p for p in prompts.get("prepend") or [] if isinstance(p, dict)],
        append=[p for p in prompts.get("append") or [] if isinstance(p, dict)],
        aliases=aliases,
        routes=routes,
    )


def _merge_policies(a: AiPolicy, b: AiPolicy) -> AiPolicy:
    """Route-level ``ai`` policy ``a`` plus backend-level ``b`` (backend wins on conflicts)."""
    return AiPolicy(
        request_guards=a.request_guards + b.request_guards,
        response_guards=a.response_guards + b.response_guards,
        defaults={**(a.defaults or {}), **(b.defaults or {})},
        overrides={**(a.overrides or {}), **(b.overrides or {})},
        prepend=a.prepend + b.prepend,
        append=a.append + b.append,
        aliases={**a.aliases, **b.aliases},
        routes=b.routes or a.routes,
    )


# -- ai backends on routes ----------------------------------------------------------------------
#: What an ``ai`` backend reads from its policies; the rest are refused.
_AI_BACKEND_POLICIES = {"backend_auth", "backend_tls", "http", "ai"}
_AI_PROVIDER_POLICIES = {"backend_auth", "backend_tls"}
_NOT_FOR_AI = "not supported for ai backends yet"


def _provider_from_ai(c: CompileScope, spec, path: str, bpol, route_policies, bpath: str = "", rpath: str = ""):
    """One ``{name, provider: {openAI: {...}}, hostOverride, ...}`` entry; ``bpath`` and
    ``rpath`` are the paths of the backend's and the route's policies."""
    from ...unsupported import refuse_except

    refuse_except(c.errors.add, spec.policies, f"{path}.policies", _AI_PROVIDER_POLICIES, _NOT_FOR_AI)
    ((kind, settings),) = spec.provider.items()
    settings = settings or {}
    if not isinstance(settings, dict):
        c.errors.add(f"{path}.provider.{kind}", "expected an object")
        settings = {}
    known = {
        "model",
        "region",
        "projectId",
        "host",
        "apiVersion",
        "guardrailIdentifier",
        "guardrailVersion",
        "resourceName",
        "resourceType",
        "baseUrl",
        "apiKey",
    }
    for k in settings:
        if k not in known:
            c.errors.add(f"{path}.provider.{kind}.{k}", "unknown field")
    # the most specific setting wins: the provider's own, the backend's, the route's
    auth_cfg, auth_path = next(
        (
            (p.backend_auth, f"{pp}.backendAuth")
            for p, pp in ((bpol, bpath), (spec.policies, f"{path}.policies"), (route_policies, rpath))
            if p is not None and p.backend_auth is not None
        ),
        (None, None),
    )
    tls_cfg, tls_path = next(
        (
            (p.backend_tls, f"{pp}.backendTLS")
            for p, pp in ((spec.policies, f"{path}.policies"), (bpol, bpath), (route_policies, rpath))
            if p is not None and p.backend_tls is not None
        ),
        (None, None),
    )
    g = None
    if settings.get("guardrailIdentifier"):
        g = (settings["guardrailIdentifier"], str(settings.get("guardrailVersion") or "DRAFT"))
    return make_provider(
        c,
        name=spec.name,
        kind=kind,
        path=f"{path}.provider.{kind}",
        model=settings.get("model"),
        base_url=settings.get("baseUrl"),
        host_override=spec.host_override,
        path_override=spec.path_override,
        path_prefix=spec.path_prefix,
        api_key=settings.get("apiKey"),
        auth_cfg=auth_cfg,
        tls_cfg=tls_cfg,
        region=settings.get("region"),
        project=settings.get("projectId"),
        azure_resource=settings.get("resourceName"),
        azure_type=settings.get("resourceType"),
        api_version=settings.get("apiVersion"),
        azure_host=settings.get("host"),
        guardrail=g,
        auth_path=auth_path,
        tls_path=tls_path,
    )


def compile_ai_backend(
    c,
    ai: m.AiBackend,
    path: str,
    route_policies,
    backend_policies,
    traffic: dict,
    name: str | None = None,
    route_path: str | None = None,
) -> AiBackendSet:
    from ...unsupported import refuse_except

    rpath = (route_path or path.rsplit(".backends", 1)[0]) + ".policies"
    bpath = path.rsplit(".", 1)[0] + ".policies"
    refuse_except(c.errors.add, backend_policies, bpath, _AI_BACKEND_POLICIES, _NOT_FOR_AI)
    if route_policies is not None and route_policies.retry is not None:
        c.errors.add(f"{rpath}.retry", "retries are not supported for ai backends yet")
    head_timeout = traffic.get("backend_timeout")
    own = c.backend_http(backend_policies.http if backend_policies is not None else None, f"{bpath}.http")
    if own is not None:  # the backend's own request timeout; the shorter wins
        head_timeout = own if head_timeout is None else min(head_timeout, own)
    route_ai = compile_ai_policy(c, route_policies.ai if route_policies is not None else None, f"{rpath}.ai")
    back_ai = compile_ai_policy(c, backend_policies.ai if backend_policies is not None else None, f"{bpath}.ai")
    policy = _merge_policies(route_ai, back_ai)
    groups = []
    tokenize = ai.tokenize
    if ai.groups is not None:
        for gi, grp in enumerate(ai.groups):
            cands = []
            for pi, spec in enumerate(grp.providers):
                prov = _provider_from_ai(
                    c, spec, f"{path}.groups[{gi}].providers[{pi}]", backend_policies, route_policies, bpath, rpath
                )
                cands.append(Candidate(prov, model=prov.model))
                tokenize = tokenize or spec.tokenize
            if cands:
                groups.append(cands)
    else:
        prov = _provider_from_ai(c, ai, path, backend_policies, route_policies, bpath, rpath)
        groups.append([Candidate(prov, model=prov.model)])
    # ``ai.promptCaching``: the backend's own, else the route's, for the providers that take cache points
    provs = [cd.provider for grp_ in groups for cd in grp_]
    for pol, ppath in ((backend_policies, f"{bpath}.ai"), (route_policies, f"{rpath}.ai")):
        pc = pol.ai.get("promptCaching") if pol is not None and isinstance(pol.ai, dict) else None
        if pc is None:
            continue
        takers = [p for p in provs if p.system in ("anthropic", "aws.bedrock") and "prompt_caching" not in p.extra]
        if not takers and not any("prompt_caching" in p.extra for p in provs):
            c.errors.add(f"{ppath}.promptCaching", "is only used with anthropic and bedrock providers (cache points)")
        for p in takers:
            attach_prompt_caching(c, p, "anthropic", pc, f"{ppath}.promptCaching")
    # ``ai.transformations``: the route's and the backend's (whose fields win), for every provider
    xfields: dict = {}
    for pol, ppath in ((route_policies, f"{rpath}.ai"), (backend_policies, f"{bpath}.ai")):
        tspec = pol.ai.get("transformations") if pol is not None and isinstance(pol.ai, dict) else None
        if isinstance(tspec, dict):
            xf = compile_transformation(c, tspec, f"{ppath}.transformations")
            xfields.update(xf.fields if xf is not None else [])
    if xfields:
        xf = Transformation(list(xfields.items()))
        for p in provs:
            p.extra["transformation"] = xf
    return AiBackendSet(
        pool=c.services.pool,
        metrics=getattr(c.services, "metrics", None),
        groups=groups,
        policy=policy,
        head_timeout=head_timeout,
        request_timeout=traffic.get("request_timeout"),
        tokenize=tokenize,
        label=name or ai.name or "ai",
    )


# -- the llm: shorthand -------------------------------------------------------------------------
#: ``params`` that only mean something for some providers (lowercase provider names).
_PARAMS_FOR = {
    "aws_region": ("awsRegion", ("bedrock",)),
    "vertex_region": ("vertexRegion", ("vertex",)),
    "vertex_project": ("vertexProject", ("vertex",)),
    "azure_resource_name": ("azureResourceName", ("azure",)),
    "azure_resource_type": ("azureResourceType", ("azure",)),
    "azure_api_version": ("azureApiVersion", ("azure",)),
}


def _provider_params(c: CompileScope, kind: str, prm: m.LlmParams, path: str) -> None:
    for attr, (key, kinds) in _PARAMS_FOR.items():
        if getattr(prm, attr) is not None and kind.lower() not in kinds:
            c.errors.add(f"{path}.{key}", f"is only used with provider {' or '.join(kinds)}")
    if prm.azure_project_name is not None:
        c.errors.add(f"{path}.azureProjectName", "not supported yet")
    if prm.base_url is not None and prm.host_override is not None:
        c.errors.add(f"{path}.hostOverride", "cannot be combined with baseUrl (which sets the host)")


def _custom_provider(c: CompileScope, custom: dict, path: str) -> None:
    """``{custom: {...}}``: an OpenAI-compatible server at ``params.baseUrl``; its
    ``formats`` may only name the chat completions API (the one agentgw speaks to it)."""
    for k, v in custom.items():
        if k != "formats":
            c.errors.add(f"{path}.{k}", "not supported yet")
            continue
        for i, f in enumerate(v if isinstance(v, list) else [v]):
            t = f.get("type") if isinstance(f, dict) else f
            if t != "completions":
                c.errors.add(
                    f"{path}.formats[{i}]", f"{t!r} is not supported yet for custom providers (only completions)"
                )


def compile_llm(c: CompileScope, llm: m.LlmConfig):
    """The ``llm:`` section as a bind of its own: every path goes to one ``ai`` backend
    whose model table is ``llm.models`` (entries sharing a name are a failover chain)."""
    from ...policies.local_ratelimit import LocalRateLimit, TokenBucket
    from ...proxy.runtime import BindRuntime, ListenerRuntime, Route
    from ...routing.table import PREFIX, Match, RouteTable
    from .. import llm as _pkg  # noqa: F401

    entries = []
    wh = _webhook_factory(c)
    mg = managed_factory(c)
    tokenize = False
    seen_names: dict[str, int] = {}
    for i, mdl in each_model(c, llm):  # provider references applied
        path = f"llm.models[{i}]"
        dup = seen_names.get(mdl.name, 0)
        seen_names[mdl.name] = dup + 1
        for attr, key in (("backend_tunnel", "backendTunnel"),):
            if getattr(mdl, attr) is not None:
                c.errors.add(f"{path}.{key}", "not supported by this agentgw build yet")
        pr = mdl.provider
        prm = mdl.params
        if isinstance(pr, str):
            kind = pr
        elif isinstance(pr, m.CustomProvider):
            kind = "custom"
            _custom_provider(c, pr.custom, f"{path}.provider.custom")
        else:  # (references are resolved by each_model)
            continue
        _provider_params(c, kind, prm, f"{path}.params")
        prov = make_provider(
            c,
            name=f"{mdl.name}#{dup + 1}" if dup else mdl.name,
            kind=kind,
            path=f"{path}.params",
            model=prm.model,
            base_url=prm.base_url,
            host_override=prm.host_override,
            path_override=prm.path_override,
            path_prefix=prm.path_prefix,
            api_key=prm.api_key,
            auth_cfg=mdl.auth,
            tls_cfg=mdl.tls,
            auth_path=f"{path}.auth",
            tls_path=f"{path}.tls",
            region=prm.aws_region or prm.vertex_region,
            project=prm.vertex_project,
            azure_resource=prm.azure_resource_name,
            azure_type=prm.azure_resource_type,
            api_version=prm.azure_api_version,
        )
        tokenize = tokenize or prm.tokenize
        strip = mdl.name[:-1] if mdl.name.endswith("/*") else ""
        rh = (
            HeaderEdits(mdl.request_headers.add, mdl.request_headers.set, mdl.request_headers.remove).apply
            if mdl.request_headers
            else None
        )
        sh = (
            HeaderEdits(mdl.response_headers.add, mdl.response_headers.set, mdl.response_headers.remove).apply
            if mdl.response_headers
            else None
        )
        if mdl.prompt_caching is not None:
            attach_prompt_caching(c, prov, kind, mdl.prompt_caching, f"{path}.promptCaching")
        xf = compile_transformation(c, mdl.transformation, f"{path}.transformation")
        if xf is not None:
            prov.extra["transformation"] = xf
        cand = Candidate(
            prov,
            model=prm.model,
            strip_prefix=strip,
            defaults=mdl.defaults,
            overrides=mdl.overrides,
            req_headers=rh,
            resp_headers=sh,
            health=compile_health(c, mdl.health, f"{path}.health"),
        )
        g = mdl.guardrails or {}
        greq = (
            parse_guard_list(g.get("request"), f"{path}.guardrails.request", c.errors, wh, mg)
            if isinstance(g, dict)
            else []
        )
        gresp = (
            parse_guard_list(g.get("response"), f"{path}.guardrails.response", c.errors, wh, mg)
            if isinstance(g, dict)
            else []
        )
        check_guard_options(g, f"{path}.guardrails", c.errors, gresp)
        hm = []
        for mm in mdl.matches:
            hm.append(
                [
                    (h.name.lower(), h.value.exact, re.compile(h.value.regex) if h.value.regex is not None else None)
                    for h in mm.headers
                ]
            )
        entries.append(ModelEntry(mdl.name, cand, greq, gresp, hm, internal=mdl.visibility == "internal"))
    policies = []
    lp = llm.policies
    if lp is not None:
        from ...policies.identity import compile_identity
        from ...unsupported import UNSUPPORTED_ROUTE_POLICIES

        c.refuse_fields(lp, {k: v for k, v in UNSUPPORTED_ROUTE_POLICIES.items() if hasattr(lp, k)}, "llm.policies")
        # authentication and authorization, as on a route
        policies.extend(compile_identity(c, lp, "llm.policies"))
        if lp.local_rate_limit:
            policies.append(
                LocalRateLimit(
                    [
                        TokenBucket(b.max_tokens, b.tokens_per_fill, float(b.fill_interval), b.type)
                        for b in lp.local_rate_limit
                    ]
                )
            )
        from ...policies.global_ratelimit import compile_rate_limits

        policies.extend(compile_rate_limits(c, lp, "llm.policies", "llm"))
        if lp.cors is not None:
            from ...policies.cors import Cors

            policies.append(Cors.from_config(lp.cors))
    shared = None  # llm.policies.guardrails: every model's guards, before its own
    sg = lp.guardrails if lp is not None else None
    if sg is not None:
        if not isinstance(sg, dict):
            c.errors.add("llm.policies.guardrails", "expected {request: [...], response: [...]}")
        else:
            shared = AiPolicy(
                request_guards=parse_guard_list(sg.get("request"), "llm.policies.guardrails.request", c.errors, wh, mg),
                response_guards=parse_guard_list(
                    sg.get("response"), "llm.policies.guardrails.response", c.errors, wh, mg
                ),
            )
            check_guard_options(sg, "llm.policies.guardrails", c.errors, shared.response_guards)
    backend = AiBackendSet(
        pool=c.services.pool,
        metrics=getattr(c.services, "metrics", None),
        policy=shared,
        models=entries,
        virtual=compile_virtual(c, llm, entries),
        tokenize=tokenize,
        label="llm",
    )
    route = Route("llm", policies, backend, "llm")
    table = RouteTable([([], [Match(route, kind=PREFIX, value="/", order=0)])])
    return BindRuntime(llm.port, [ListenerRuntime("llm", None, "HTTP", table)], c.services)


_ = ssl  # TLS contexts come from the compiler's backendTLS cache
