"""Policy translation: AgentgatewayPolicy (and the vendor shapes that map cleanly) → config policies.

Every function returns ``(policies_dict, problems)`` where problems are
``"<field path>: <message>"`` strings; a policy with problems is not applied and its status
says why. The output uses agentgw config keys (`docs/config-reference.md`).
"""

from __future__ import annotations

import ast
import base64
import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

#: the ``http.version`` values the proxy speaks to backends, as its config compiler reads them
#: (`agentgw.backends.http.parse_http_version`): HTTP1 / HTTP/1.1, HTTP2 / HTTP/2.0. Which
#: backends speak HTTP/2 is the compiler's to say (``agentgw.kube.check`` refuses the rest)
_HTTP_VERSION = re.compile(r"(?i)(?:HTTP[/_]?)?(1(?:[._]?1)?|2(?:[._]?0)?)")

AUTH_MODES = {"strict": "strict", "optional": "optional", "permissive": "permissive"}
_UNITS = {
    "second": "1s",
    "seconds": "1s",
    "minute": "1m",
    "minutes": "1m",
    "hour": "1h",
    "hours": "1h",
    "day": "24h",
    "days": "24h",
}


def secret_data(secret: dict) -> dict[str, str]:
    """A Secret's values as text (``data`` is base64, ``stringData`` plain; stringData wins)."""
    out: dict[str, str] = {}
    for k, v in (secret.get("data") or {}).items():
        try:
            out[k] = base64.b64decode(v or "").decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            out[k] = ""
    for k, v in (secret.get("stringData") or {}).items():
        out[k] = "" if v is None else str(v)
    return out


def _mode(v: Any, default: str, path: str, problems: list[str]) -> str:
    if v is None:
        return default
    m = AUTH_MODES.get(str(v).lower())
    if m is None:
        problems.append(f"{path}: unknown mode {v!r} (Strict, Optional or Permissive)")
        return default
    return m


def duration(v: Any) -> str | None:
    """Gateway API durations (``10s``, ``1m``) pass through; integers are seconds."""
    if v is None:
        return None
    if isinstance(v, (int, float)):
        return f"{int(v)}s"
    return str(v)


def header_modifier(f: dict) -> dict:
    """Gateway API HTTPHeaderFilter (``set``/``add`` as lists of {name, value}) → config shape."""
    out: dict[str, Any] = {}
    for key in ("add", "set"):
        items = f.get(key) or []
        if items:
            out[key] = {h["name"]: str(h.get("value", "")) for h in items}
    if f.get("remove"):
        out["remove"] = list(f["remove"])
    return out


def cors(f: dict) -> dict:
    out: dict[str, Any] = {}
    for key in ("allowOrigins", "allowMethods", "allowHeaders", "exposeHeaders"):
        if f.get(key):
            out[key] = [str(x) for x in f[key]]
    if f.get("allowCredentials") is not None:
        out["allowCredentials"] = bool(f["allowCredentials"])
    if f.get("maxAge") is not None:
        out["maxAge"] = duration(f["maxAge"])
    return out


class Resolver:
    """What policy translation needs from the rest of the world (Secrets, Services, grants)."""

    def __init__(
        self,
        secret: Callable[[str, str], dict | None],
        service_url: Callable[[dict, str, str], tuple[str | None, str | None]],
        config_map: Callable[[str, str], dict | None],
    ):
        self.secret = secret  # (namespace, name) -> Secret or None
        self.service_url = service_url  # (backendRef, from_ns, from_kind) -> (url, error)
        self.config_map = config_map


# -- traffic ----------------------------------------------------------------------------------


def _jwt(spec: dict, ns: str, r: Resolver, path: str, problems: list[str]) -> dict:
    out: dict[str, Any] = {"mode": _mode(spec.get("mode"), "strict", f"{path}.mode", problems)}
    providers = []
    for i, p in enumerate(spec.get("providers") or []):
        pp = f"{path}.providers[{i}]"
        prov: dict[str, Any] = {"issuer": p.get("issuer")}
        if not p.get("issuer"):
            problems.append(f"{pp}.issuer: required")
        if p.get("audiences"):
            prov["audiences"] = list(p["audiences"])
        jwks = p.get("jwks") or {}
        if "inline" in jwks:
            prov["jwks"] = str(jwks["inline"])
        elif "secretRef" in jwks or "configMapRef" in jwks:
            kind = "Secret" if "secretRef" in jwks else "ConfigMap"
            ref = jwks.get("secretRef") or jwks.get("configMapRef") or {}
            rns = ref.get("namespace") or ns
            src = r.secret(rns, ref.get("name", "")) if kind == "Secret" else r.config_map(rns, ref.get("name", ""))
            data = (secret_data(src) if kind == "Secret" else dict(src.get("data") or {})) if src else {}
            key = ref.get("key") or "jwks"
            if rns != ns:
                problems.append(
                    f"{pp}.jwks.{'secretRef' if kind == 'Secret' else 'configMapRef'}: must be in the policy's namespace"
                )
            elif not data.get(key):
                problems.append(f"{pp}.jwks: {kind} {rns}/{ref.get('name')} with key {key} not found")
            else:
                prov["jwks"] = data[key]
        elif "remote" in jwks:
            rem = jwks["remote"] or {}
            if rem.get("url"):
                prov["jwks"] = {"url": rem["url"]}
            elif rem.get("backendRef"):
                url, err = r.service_url(rem["backendRef"], ns, "policy")
                if err or url is None:
                    problems.append(f"{pp}.jwks.remote.backendRef: {err}")
                else:
                    prov["jwks"] = {"url": url + "/" + str(rem.get("jwksPath", "")).lstrip("/")}
            else:
                problems.append(f"{pp}.jwks.remote: needs url or backendRef")
        else:
            problems.append(f"{pp}.jwks: needs inline or remote")
        providers.append(prov)
    if not providers:
        problems.append(f"{path}.providers: at least one provider is required")
    out["providers"] = providers
    c2h = spec.get("claimToHeaders")  # agentgw extension
    if c2h:
        out["claimToHeaders"] = [{"claim": str(c.get("claim")), "header": str(c.get("header"))} for c in c2h]
    return out


def _api_keys_from_secret(sec: dict) -> list[dict]:
    keys = []
    for name, value in sorted(secret_data(sec).items()):
        entry: dict[str, Any] = {"key": value, "metadata": {"name": name}}
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict) and isinstance(parsed.get("key"), str):
            entry = {"key": parsed["key"], "metadata": {"name": name, **(parsed.get("metadata") or {})}}
        keys.append(entry)
    return keys


def _api_key(spec: dict, ns: str, r: Resolver, path: str, problems: list[str]) -> dict:
    out: dict[str, Any] = {"mode": _mode(spec.get("mode"), "strict", f"{path}.mode", problems)}
    ref = spec.get("secretRef")
    if not ref or not ref.get("name"):
        problems.append(f"{path}.secretRef: required")
        return out
    sec = r.secret(ref.get("namespace") or ns, ref["name"])
    if sec is None:
        problems.append(f"{path}.secretRef: Secret {ref.get('namespace') or ns}/{ref['name']} not found")
        return out
    out["keys"] = _api_keys_from_secret(sec)
    if not out["keys"]:
        problems.append(f"{path}.secretRef: Secret {ref.get('namespace') or ns}/{ref['name']} holds no keys")
    return out


def _basic(spec: dict, ns: str, r: Resolver, path: str, problems: list[str]) -> dict:
    mode = _mode(spec.get("mode"), "strict", f"{path}.mode", problems)
    if mode == "permissive":
        mode = "optional"
    lines = [str(u) for u in spec.get("users") or []]
    ref = spec.get("secretRef")
    if ref:
        sec = r.secret(ref.get("namespace") or ns, ref.get("name", ""))
        if sec is None:
            problems.append(f"{path}.secretRef: Secret {ref.get('namespace') or ns}/{ref.get('name')} not found")
        else:
            data = secret_data(sec)
            key = ref.get("key") or (
                ".htaccess"
                if ".htaccess" in data
                else "htpasswd"
                if "htpasswd" in data
                else "users"
                if "users" in data
                else None
            )
            if key is None or key not in data:
                problems.append(f"{path}.secretRef: Secret has no key {ref.get('key') or '.htaccess'}")
            else:
                lines.extend(ln for ln in data[key].splitlines() if ln.strip())
    if not lines:
        problems.append(f"{path}: needs users or secretRef")
    out: dict[str, Any] = {"htpasswd": "\n".join(lines) + "\n", "mode": mode}
    if spec.get("realm"):
        out["realm"] = spec["realm"]
    return out


def _authorization(spec: dict, path: str, problems: list[str]) -> dict:
    exprs = list(((spec.get("policy") or {}).get("matchExpressions")) or [])
    if not exprs:
        problems.append(f"{path}.policy.matchExpressions: at least one expression is required")
    action = str(spec.get("action") or "Allow").lower()
    if action not in ("allow", "deny", "require"):
        problems.append(f"{path}.action: unknown action {spec.get('action')!r} (Allow, Deny or Require)")
        action = "allow"
    return {action: exprs}


def _local_rate_limit(items: list, path: str, problems: list[str]) -> list[dict]:
    out = []
    for i, it in enumerate(items or []):
        unit = _UNITS.get(str(it.get("unit", "")).lower())
        n = it.get("requests", it.get("tokens"))
        if unit is None or not isinstance(n, int) or n < 1:
            problems.append(f"{path}[{i}]: needs requests (or tokens) >= 1 and unit Seconds, Minutes or Hours")
            continue
        entry = {"maxTokens": n + int(it.get("burst") or 0), "tokensPerFill": n, "fillInterval": unit}
        if "tokens" in it and "requests" not in it:
            entry["type"] = "tokens"
        out.append(entry)
    return out


def rate_limit_config_to_local(rlc: dict, path: str, problems: list[str]) -> list[dict]:
    """Without Redis: a RateLimitConfig whose descriptors are plain counters (generic_key) → per-replica token buckets."""
    raw = (rlc.get("spec") or {}).get("raw") or {}
    descs = raw.get("descriptors") or []
    out = []
    used = set()
    for act in raw.get("rateLimits") or []:
        for a in act.get("actions") or []:
            gk = a.get("genericKey")
            if gk is None:
                problems.append(
                    f"{path}.rateLimits: only genericKey actions map to agentgw rate limits (got {sorted(a)})"
                )
                continue
            used.add(gk.get("descriptorValue"))
    for i, d in enumerate(descs):
        if d.get("key") != "generic_key":
            problems.append(f"{path}.descriptors[{i}].key: only generic_key descriptors map to agentgw rate limits")
            continue
        if used and d.get("value") not in used:
            continue
        rl = d.get("rateLimit") or {}
        unit = _UNITS.get(str(rl.get("unit", "")).lower())
        n = rl.get("requestsPerUnit")
        if unit is None or not isinstance(n, int) or n < 1:
            problems.append(
                f"{path}.descriptors[{i}].rateLimit: needs requestsPerUnit >= 1 and unit SECOND, MINUTE, HOUR or DAY"
            )
            continue
        out.append({"maxTokens": n, "tokensPerFill": n, "fillInterval": unit})
    if not out and not problems:
        problems.append(f"{path}: no descriptors")
    return out


def _action_entry(a: dict, path: str, problems: list[str]) -> tuple[dict, str, str | None] | None:
    """One RateLimitConfig action → (globalRateLimit entry, descriptor key, descriptor value to match)."""
    if "genericKey" in a:
        g = a["genericKey"] or {}
        key = g.get("descriptorKey") or "generic_key"
        val = str(g.get("descriptorValue", ""))
        return {"key": key, "value": json.dumps(val)}, key, val
    if "remoteAddress" in a:
        return {"key": "remote_address", "value": "source.address"}, "remote_address", None
    if "requestHeaders" in a:
        h = a["requestHeaders"] or {}
        key = h.get("descriptorKey") or h.get("headerName", "")
        return {"key": key, "value": f"request.headers[{json.dumps(str(h.get('headerName', '')).lower())}]"}, key, None
    problems.append(f"{path}: action {sorted(a)} has no agentgw equivalent (genericKey, remoteAddress, requestHeaders)")
    return None


def rate_limit_config_to_global(rlc: dict, redis_url: str, path: str, problems: list[str]) -> dict:
    """A RateLimitConfig → ``globalRateLimit`` (counters in Redis, shared by every replica)."""
    raw = (rlc.get("spec") or {}).get("raw") or {}
    out = []
    for i, rl in enumerate(raw.get("rateLimits") or []):
        level = raw.get("descriptors") or []
        entries = []
        limit = None
        for j, a in enumerate(rl.get("actions") or []):
            got = _action_entry(a, f"{path}.rateLimits[{i}].actions[{j}]", problems)
            if got is None:
                break
            entry, key, val = got
            node = next(
                (d for d in level if d.get("key") == key and (val is None or d.get("value") in (None, val))), None
            )
            if node is None:
                problems.append(
                    f"{path}.rateLimits[{i}].actions[{j}]: no descriptor with key {key!r}"
                    + (f" and value {val!r}" if val is not None else "")
                )
                break
            entries.append(entry)
            limit = node.get("rateLimit")
            level = node.get("descriptors") or []
        else:
            if not entries or not limit:
                problems.append(f"{path}.rateLimits[{i}]: no rateLimit at the end of its descriptors")
                continue
            out.append(
                {
                    "entries": entries,
                    "rateLimit": {
                        "requestsPerUnit": int(limit.get("requestsPerUnit", 0)),
                        "unit": str(limit.get("unit", "")),
                    },
                    "type": "tokens" if str(rl.get("type", "REQUEST")).upper() == "TOKEN" else "requests",
                }
            )
    if not out and not problems:
        problems.append(f"{path}.rateLimits: none")
    return {"redis": {"url": redis_url}, "descriptors": out}


def traffic(
    spec: dict,
    ns: str,
    r: Resolver,
    lookup_rlc: Callable[[str, str], dict | None],
    path: str = "spec.traffic",
    redis_url: str | None = None,
) -> tuple[dict, str, list[str]]:
    """``spec.traffic`` → (route policies, phase, problems). Phase ``PreRouting`` means listener-level."""
    problems: list[str] = []
    out: dict[str, Any] = {}
    phase = "PostRouting"
    for key, val in (spec or {}).items():
        p = f"{path}.{key}"
        if key == "phase":
            phase = str(val)
            if phase not in ("PreRouting", "PostRouting"):
                problems.append(f"{p}: must be PreRouting or PostRouting")
        elif key == "jwtAuthentication":
            out["jwtAuth"] = _jwt(val or {}, ns, r, p, problems)
        elif key == "apiKeyAuthentication":
            out["apiKey"] = _api_key(val or {}, ns, r, p, problems)
        elif key == "basicAuthentication":
            out["basicAuth"] = _basic(val or {}, ns, r, p, problems)
        elif key == "authentication":  # ACK TrafficPolicy: {apiKeyAuth: {secretRef}}
            for k2, v2 in (val or {}).items():
                if k2 == "apiKeyAuth":
                    out["apiKey"] = _api_key({"mode": "Strict", **(v2 or {})}, ns, r, f"{p}.apiKeyAuth", problems)
                elif k2 == "jwtAuth":
                    out["jwtAuth"] = _jwt(v2 or {}, ns, r, f"{p}.jwtAuth", problems)
                else:
                    problems.append(f"{p}.{k2}: not supported by agentgw")
        elif key == "authorization":
            out["authorization"] = _authorization(val or {}, p, problems)
        elif key == "rateLimit":
            for k2, v2 in (val or {}).items():
                if k2 == "local":
                    out["localRateLimit"] = _local_rate_limit(v2, f"{p}.local", problems)
                elif k2 == "global":
                    out["remoteRateLimit"] = _global_rate_limit(v2 or {}, ns, r, f"{p}.global", problems)
                elif k2 == "conditional":
                    problems.append(f"{p}.conditional: {_NO_CONDITIONAL} for rate limits")
                else:
                    problems.append(f"{p}.{k2}: not supported by agentgw")
        elif key == "entRateLimit":
            refs = ((val or {}).get("global") or {}).get("rateLimitConfigRefs") or []
            buckets: list[dict] = []
            descriptors: list[dict] = []
            if not refs:
                problems.append(f"{p}.global.rateLimitConfigRefs: required")
            for i, ref in enumerate(refs):
                rlc = lookup_rlc(ref.get("namespace") or ns, ref.get("name", ""))
                where = f"RateLimitConfig {ref.get('namespace') or ns}/{ref.get('name')}: spec.raw"
                if rlc is None:
                    problems.append(
                        f"{p}.global.rateLimitConfigRefs[{i}]: RateLimitConfig {ref.get('namespace') or ns}/{ref.get('name')} not found"
                    )
                elif redis_url:
                    descriptors.extend(rate_limit_config_to_global(rlc, redis_url, where, problems)["descriptors"])
                else:
                    buckets.extend(rate_limit_config_to_local(rlc, where, problems))
            if redis_url:
                out["globalRateLimit"] = {"redis": {"url": redis_url}, "descriptors": descriptors}
            else:
                out["localRateLimit"] = buckets
        elif key == "cors":
            out["cors"] = cors(val or {})
        elif key == "timeouts":
            t = {}
            if (val or {}).get("request") is not None:
                t["requestTimeout"] = duration(val["request"])
            if (val or {}).get("backendRequest") is not None:
                t["backendRequestTimeout"] = duration(val["backendRequest"])
            out["timeout"] = t
        elif key == "retry":
            rt: dict[str, Any] = {"attempts": int((val or {}).get("attempts", 1))}
            if (val or {}).get("backoff") is not None:
                rt["backoff"] = duration(val["backoff"])
            if (val or {}).get("codes"):
                rt["codes"] = [int(c) for c in val["codes"]]
            out["retry"] = rt
        elif key == "headerModifiers":
            if (val or {}).get("request"):
                out["requestHeaderModifier"] = header_modifier(val["request"])
            if (val or {}).get("response"):
                out["responseHeaderModifier"] = header_modifier(val["response"])
        elif key == "directResponse":
            out["directResponse"] = _direct_response(val or {}, p, problems)
        elif key == "csrf":
            out["csrf"] = {"additionalOrigins": [str(o) for o in (val or {}).get("additionalOrigins") or []]}
        elif key == "hostRewrite":
            mode = str((val or {}).get("mode"))
            if mode == "None":
                out["urlRewrite"] = {"authority": "none"}
            else:
                problems.append(
                    f"{p}.mode: {mode} is not supported by agentgw (it cannot set Host to the backend's hostname;"
                    " None, which keeps the client's Host, is)"
                )
        elif key == "transformation":
            out["transformations"] = _transformation(val or {}, p, problems)
        elif key == "extAuth":
            out["extAuthz"] = _ext_auth(val or {}, ns, r, p, problems)
        elif key == "extProc":
            out["extProc"] = _ext_proc(val or {}, ns, r, p, problems)
        elif key == "delay":
            out["delay"] = {"duration": str((val or {}).get("duration", ""))}
        elif key == "buffer":
            problems.append(
                f"{p}: not supported by agentgw (it has no policy that holds whole request or response bodies"
                " before forwarding them: bodies are streamed, and policies that read a body buffer it themselves)"
            )
        else:
            problems.append(f"{p}: not supported by agentgw")
    if phase == "PreRouting":
        late = sorted(k for k in out if k not in _PRE_ROUTING)
        if late:
            problems.append(
                f"{path}.phase: PreRouting policies run on the listener, where agentgw has no {', '.join(late)}"
            )
    return out, phase, problems


#: the config policies an agentgw listener enforces (what PreRouting traffic becomes)
_PRE_ROUTING = {"jwtAuth", "extAuthz", "basicAuth", "apiKey", "authorization"}
_NO_CONDITIONAL = "conditional (first matching condition) policies are not supported by agentgw"


def _cel_string_literal(src: str) -> str | None:
    """The text of a CEL string literal (``"text/plain"`` or ``'x'``), or None if ``src`` is
    any other expression."""
    src = src.strip()
    if len(src) < 2 or src[0] not in "\"'" or src[-1] != src[0] or src.startswith(('"""', "'''")):
        return None
    try:
        v = ast.literal_eval(src)
    except (ValueError, SyntaxError):
        return None
    return v if isinstance(v, str) else None


def _direct_response_fields(d: dict, path: str, problems: list[str]) -> dict:
    out: dict[str, Any] = {"status": int(d.get("status") or 0)}
    if d.get("body") is not None:
        out["body"] = str(d["body"])
    if d.get("bodyExpression") is not None:
        problems.append(
            f"{path}.bodyExpression: not supported by agentgw (its direct responses have a fixed body; use body)"
        )
    headers = {}
    for i, h in enumerate(d.get("headers") or []):
        lit = _cel_string_literal(str(h.get("value", "")))
        if lit is None:
            problems.append(
                f"{path}.headers[{i}].value: only a CEL string literal (such as '\"text/plain\"') is supported"
                " by agentgw, which sets direct response headers to fixed values"
            )
        else:
            headers[str(h.get("name"))] = lit
    if headers:
        out["headers"] = headers
    return out


def _direct_response(d: dict, path: str, problems: list[str]) -> dict:
    if "conditional" not in d:
        return _direct_response_fields(d, path, problems)
    entries = []
    for i, e in enumerate(d.get("conditional") or []):
        entry = _direct_response_fields(e.get("policy") or {}, f"{path}.conditional[{i}].policy", problems)
        if e.get("condition"):
            entry = {"condition": str(e["condition"]), **entry}
        entries.append(entry)
    return {"conditional": entries}


def _transform(t: dict, path: str, problems: list[str]) -> dict:
    out: dict[str, Any] = {}
    for key in ("set", "add"):
        for i, h in enumerate(t.get(key) or []):
            name = str(h.get("name", ""))
            if name.startswith(":"):
                problems.append(f"{path}.{key}[{i}].name: pseudo-headers ({name}) are not supported by agentgw")
            out.setdefault(key, {})[name] = str(h.get("value", ""))
    if t.get("remove"):
        out["remove"] = [str(h) for h in t["remove"]]
        for i, h in enumerate(out["remove"]):
            if h.startswith(":"):
                problems.append(f"{path}.remove[{i}]: pseudo-headers ({h}) are not supported by agentgw")
    for key in ("body", "metadata"):
        if t.get(key) is not None:
            problems.append(f"{path}.{key}: not supported by agentgw (its transformations change headers only)")
    return out


def _transformation(t: dict, path: str, problems: list[str]) -> dict:
    if "conditional" in t:
        problems.append(f"{path}.conditional: {_NO_CONDITIONAL} for transformations")
        return {}
    return {k: _transform(t[k] or {}, f"{path}.{k}", problems) for k in ("request", "response") if k in t}


def _endpoint(e: dict, ns: str, r: Resolver, path: str, problems: list[str]) -> tuple[str | None, str]:
    """A PolicyBackendEndpoint (``backendRef`` to a Service, or ``url``) → (the config's
    ``host``: ``http(s)://host:port``, the URL's path or "")."""
    if e.get("backendRef"):
        url, err = r.service_url(e["backendRef"], ns, "policy")
        if err or url is None:
            problems.append(f"{path}.backendRef: {err}")
            return None, ""
        return url, ""
    raw = str(e.get("url") or "")
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        problems.append(f"{path}.url: must be an http:// or https:// URL with a host")
        return None, ""
    return f"{parts.scheme}://{parts.netloc}", parts.path


def _ext_auth(e: dict, ns: str, r: Resolver, path: str, problems: list[str]) -> dict:
    """``extAuth`` → ``extAuthz`` (agentgateway's standalone ExtAuthz shape)."""
    if "conditional" in e:
        problems.append(f"{path}.conditional: {_NO_CONDITIONAL} for extAuth")
        return {}
    host, url_path = _endpoint(e, ns, r, path, problems)
    out: dict[str, Any] = {"host": host or ""}
    out["failureMode"] = "allow" if e.get("failureMode") == "FailOpen" else "deny"
    if e.get("forwardBody") is not None:
        problems.append(f"{path}.forwardBody: not supported by agentgw (it sends the authorizer the request head only)")
    if e.get("grpc") is not None:
        g = e["grpc"] or {}
        proto: dict[str, Any] = {}
        if g.get("contextExtensions"):
            proto["context"] = {str(k): str(v) for k, v in g["contextExtensions"].items()}
        if g.get("requestMetadata"):
            problems.append(f"{path}.grpc.requestMetadata: not supported by agentgw")
        if e.get("cache") is not None:
            problems.append(f"{path}.cache: not supported by agentgw with grpc (only with http)")
        out["protocol"] = {"grpc": proto}
    else:
        h = e.get("http") or {}
        proto = {}
        if url_path:
            proto["path"] = json.dumps(url_path)  # the URL's path, as a CEL string
        elif h.get("path"):
            proto["path"] = str(h["path"])
        for src, dst in (
            ("redirect", "redirect"),
            ("body", "body"),
            ("addRequestHeaders", "addRequestHeaders"),
            ("responseMetadata", "metadata"),
            ("allowedResponseHeaders", "includeResponseHeaders"),
        ):
            if h.get(src):
                proto[dst] = h[src]
        if h.get("allowedRequestHeaders"):
            out["includeRequestHeaders"] = [str(x) for x in h["allowedRequestHeaders"]]
        out["protocol"] = {"http": proto}
        c = e.get("cache")
        if c is not None:
            ttl = str(c.get("ttl", ""))
            cache: dict[str, Any] = {
                "key": [str(k) for k in c.get("key") or []],
                # agentgateway reads a plain duration (5m) as one; agentgw's ttl is CEL
                "ttl": f"duration({json.dumps(ttl)})" if _DURATION.fullmatch(ttl) else ttl,
            }
            if c.get("maxEntries") is not None:
                cache["maxEntries"] = int(c["maxEntries"])
            out["cache"] = cache
    return out


_DURATION = re.compile(r"([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+")
_BODY_MODES = {"None": "none", "Buffered": "buffered", "BufferedPartial": "bufferedPartial"}
_BODY_MODES["FullDuplexStreamed"] = "fullDuplexStreamed"


def _ext_proc(e: dict, ns: str, r: Resolver, path: str, problems: list[str]) -> dict:
    """``extProc`` → ``extProc`` (the standalone shape: ``host`` and lower-case modes)."""
    if "conditional" in e:
        problems.append(f"{path}.conditional: {_NO_CONDITIONAL} for extProc")
        return {}
    host, _ = _endpoint(e, ns, r, path, problems)
    out: dict[str, Any] = {"host": host or ""}
    out["failureMode"] = "failOpen" if e.get("failureMode") == "FailOpen" else "failClosed"
    po = e.get("processingOptions")
    if po is not None:
        opts: dict[str, Any] = {}
        for k in ("requestBodyMode", "responseBodyMode"):
            if po.get(k) is not None:
                opts[k] = _BODY_MODES[str(po[k])]
        for k in ("requestHeaderMode", "responseHeaderMode"):
            if po.get(k) is not None:
                opts[k] = str(po[k]).lower()
        for k in ("requestTrailerMode", "responseTrailerMode"):
            if po.get(k) == "Send":
                problems.append(
                    f"{path}.processingOptions.{k}: Send is not supported by agentgw (it sends no trailers)"
                )
        if po.get("allowModeOverride") is not None:
            opts["allowModeOverride"] = bool(po["allowModeOverride"])
        out["processingOptions"] = opts
    if e.get("metadataContext"):
        out["metadataContext"] = {str(k): dict(v or {}) for k, v in e["metadataContext"].items()}
    for k in ("requestAttributes", "responseAttributes"):
        if e.get(k):
            out[k] = dict(e[k])
    return out


def _global_rate_limit(g: dict, ns: str, r: Resolver, path: str, problems: list[str]) -> dict:
    """``rateLimit.global`` → ``remoteRateLimit`` (an Envoy rate limit service, over gRPC)."""
    host, _ = _endpoint(g, ns, r, path, problems)
    if host and host.startswith("https://"):
        problems.append(f"{path}.url: https is not supported by agentgw for the rate limit service (plaintext gRPC)")
    descriptors = []
    for i, d in enumerate(g.get("descriptors") or []):
        dp = f"{path}.descriptors[{i}]"
        for k in ("cost", "limitOverride"):
            if d.get(k) is not None:
                problems.append(f"{dp}.{k}: not supported by agentgw")
        descriptors.append(
            {
                "entries": [
                    {"key": str(x.get("name", "")), "value": str(x.get("expression", ""))}
                    for x in d.get("entries") or []
                ],
                "type": "tokens" if d.get("unit") == "Tokens" else "requests",
            }
        )
    return {
        "domain": str(g.get("domain", "")),
        "host": (host or "").split("://", 1)[-1],
        "descriptors": descriptors,
        # agentgateway's default is FailClosed; agentgw's config default is failOpen
        "failureMode": "failOpen" if g.get("failureMode") == "FailOpen" else "failClosed",
    }


# -- backend ----------------------------------------------------------------------------------


def _secret_ref_data(ref: dict, ns: str, r: Resolver, path: str, problems: list[str]) -> dict[str, str] | None:
    """A LocalSecretObjectRef / LocalSecretKeyRef → the Secret's values (None, with a problem, if it cannot be read)."""
    if (ref.get("group") or "") not in ("", "core") or (ref.get("kind") or "Secret") != "Secret":
        problems.append(
            f"{path}: {ref.get('group')}/{ref.get('kind')} credentials are not supported by agentgw (only Secrets)"
        )
        return None
    sec = r.secret(ns, str(ref.get("name", "")))
    if sec is None:
        problems.append(f"{path}: Secret {ns}/{ref.get('name')} not found")
        return None
    return secret_data(sec)


def _secret_value(ref: dict, ns: str, r: Resolver, default_key: str, path: str, problems: list[str]) -> str | None:
    """The value under ``ref.key`` (else ``default_key``) of the Secret ``ref`` names."""
    data = _secret_ref_data(ref, ns, r, path, problems)
    if data is None:
        return None
    key = str(ref.get("key") or default_key)
    v = data.get(key)
    if not v:
        problems.append(f"{path}: Secret {ns}/{ref.get('name')} has no {key} value")
        return None
    return v


def _location(loc: dict) -> dict:
    """agentgateway's AuthorizationLocation → the config's (the same shape)."""
    out: dict[str, Any] = {}
    if loc.get("header") is not None:
        h = loc["header"]
        out["header"] = {"name": str(h.get("name", ""))}
        if h.get("prefix") is not None:
            out["header"]["prefix"] = str(h["prefix"])
    for k in ("queryParameter", "cookie"):
        if loc.get(k) is not None:
            out[k] = {"name": str(loc[k].get("name", ""))}
    return out


_NOT_TRANSLATED = "not translated by agentgw's controller yet"


def _backend_auth(val: dict, ns: str, r: Resolver, p: str, problems: list[str]) -> dict | None:
    """``auth`` (agentgateway's BackendAuth) → ``backendAuth``."""
    out: dict[str, Any] = {}
    loc = _location(val["location"]) if val.get("location") is not None else None

    def key(v: str) -> Any:
        return {"value": v, "location": loc} if loc else v

    if "secretRef" in val:
        ref = val["secretRef"] or {}
        data = _secret_ref_data(ref, ns, r, f"{p}.secretRef", problems)
        if data is not None:
            if ref.get("key"):
                v = data.get(str(ref["key"]))
            else:  # the Authorization key (a Bearer prefix stripped), or a Secret's only value
                v = data.get("Authorization") or (next(iter(data.values())) if len(data) == 1 else None)
                v = v.removeprefix("Bearer ").strip() if v else v
            if not v:
                problems.append(
                    f"{p}.secretRef: Secret {ns}/{ref.get('name')} has no {ref.get('key') or 'Authorization'} value"
                )
            else:
                out["key"] = key(v)
    elif "key" in val:
        out["key"] = key(str(val["key"]))
    elif "passthrough" in val:
        out["passthrough"] = {"location": loc} if loc else {}
    elif "aws" in val:
        a = val["aws"] or {}
        aws: dict[str, Any] = {k: str(a[k]) for k in ("region", "serviceName") if a.get(k)}
        if a.get("secretRef") is not None:
            if a.get("assumeRole") is not None:
                problems.append(f"{p}.aws: secretRef and assumeRole are mutually exclusive")
            data = _secret_ref_data(a["secretRef"], ns, r, f"{p}.aws.secretRef", problems)
            if data is not None:
                for src, dst in (("accessKey", "accessKeyId"), ("secretKey", "secretAccessKey")):
                    if not data.get(src):
                        problems.append(f"{p}.aws.secretRef: Secret {ns}/{a['secretRef'].get('name')} has no {src}")
                    aws[dst] = data.get(src, "")
                if data.get("sessionToken"):
                    aws["sessionToken"] = data["sessionToken"]
        ar = a.get("assumeRole")
        if ar is not None:
            aws["assumeRole"] = {"roleArn": str(ar.get("roleArn", ""))}
            for k in ("sessionName", "sessionNameExpression", "tags"):
                if ar.get(k) is not None:
                    problems.append(f"{p}.aws.assumeRole.{k}: not supported by agentgw (it sets only the role ARN)")
        out["aws"] = aws
    elif "gcp" in val:
        g = val["gcp"] or {}
        gcp: dict[str, Any] = {}
        if g.get("type") == "IdToken" or g.get("audience") is not None:
            problems.append(f"{p}.gcp: ID tokens are not supported by agentgw (only type AccessToken)")
        if g.get("secretRef") is not None:
            v = _secret_value(g["secretRef"], ns, r, "credentials.json", f"{p}.gcp.secretRef", problems)
            if v is not None:
                gcp["credential"] = v
        out["gcp"] = gcp
    elif "jwtSign" in val:
        j = val["jwtSign"] or {}
        v = _secret_value(j.get("signingKeyRef") or {}, ns, r, "signingKey", f"{p}.jwtSign.signingKeyRef", problems)
        js: dict[str, Any] = {"signingKey": v or ""}
        for k in ("alg", "kid", "ttl"):
            if j.get(k) is not None:
                js[k] = str(j[k])
        claims = dict(j.get("claims") or {})
        reserved = sorted(c for c in claims if c in ("iat", "exp", "nbf"))
        if reserved:
            problems.append(f"{p}.jwtSign.claims: {', '.join(reserved)} are set by the signer and cannot be configured")
        if claims:
            js["claims"] = claims
        if j.get("location") is not None:
            js["location"] = _location(j["location"])
        out["jwtSign"] = js
    for k in ("azure", "oauthTokenExchange", "crossAppAccess"):
        if k in val:
            problems.append(f"{p}.{k}: {_NOT_TRANSLATED} (agentgw's backendAuth.{k} in a config file is)")
    creds = []
    for i, c in enumerate(val.get("credentials") or []):
        cp = f"{p}.credentials[{i}]"
        v = _secret_value(c.get("secretRef") or {}, ns, r, "Authorization", f"{cp}.secretRef", problems)
        if v is not None:
            creds.append({"location": _location(c.get("location") or {}), "key": v})
    if creds:
        out["credentials"] = creds
    if not out and not problems:
        problems.append(f"{p}: needs credentials or one of key, secretRef, passthrough, aws, gcp, jwtSign")
    return out or None


def _backend_tls(val: dict, ns: str, r: Resolver, p: str, problems: list[str]) -> dict:
    """``tls`` (agentgateway's BackendTLS) → ``backendTLS``; certificate material becomes
    ``("file", name, content)`` placeholders the translator writes beside the config."""
    t: dict[str, Any] = {}
    if val.get("certificateSource") == "SPIFFE":
        problems.append(f"{p}.certificateSource: SPIFFE is not supported by agentgw (no Workload API client)")
    for i, ref in enumerate(val.get("mtlsCertificateRef") or []):
        data = _secret_ref_data(ref, ns, r, f"{p}.mtlsCertificateRef[{i}]", problems)
        if data is None:
            continue
        if not data.get("tls.crt") or not data.get("tls.key"):
            problems.append(f"{p}.mtlsCertificateRef[{i}]: Secret {ns}/{ref.get('name')} needs tls.crt and tls.key")
            continue
        base = f"mtls-{ns}-{ref['name']}"
        t["cert"] = ("file", base + ".crt", data["tls.crt"])
        t["key"] = ("file", base + ".key", data["tls.key"])
        if data.get("ca.crt"):
            t["root"] = ("file", base + "-ca.crt", data["ca.crt"])
    for i, ref in enumerate(val.get("caCertificateRefs") or []):  # (these take precedence over the mTLS Secret's CA)
        kind = ref.get("kind") or "ConfigMap"
        name = str(ref.get("name", ""))
        if kind == "Secret":
            sec = r.secret(ns, name)
            pem = secret_data(sec).get("ca.crt") if sec is not None else None
        else:
            cm = r.config_map(ns, name)
            pem = (cm.get("data") or {}).get("ca.crt") if cm is not None else None
        if not pem:
            problems.append(f"{p}.caCertificateRefs[{i}]: {kind} {ns}/{name} with key ca.crt not found")
        else:
            t["root"] = ("file", f"ca-{'secret-' if kind == 'Secret' else ''}{ns}-{name}.crt", pem)
    if val.get("sni"):
        t["hostname"] = str(val["sni"])
    mode = val.get("insecureSkipVerify")
    if mode == "All":
        t["insecure"] = True
    elif mode == "Hostname":
        t["insecureHost"] = True
    if val.get("alpnProtocols"):
        t["alpn"] = [str(x) for x in val["alpnProtocols"]]
    if val.get("verifySubjectAltNames"):
        problems.append(
            f"{p}.verifySubjectAltNames: not supported by agentgw (it checks the server certificate against"
            " the sni, or the backend's host name, only)"
        )
    if val.get("keyExchangeGroups"):
        problems.append(f"{p}.keyExchangeGroups: not supported by agentgw (it uses the TLS library's groups)")
    return t


#: agentgateway's RouteType -> agentgw's ``ai.routes`` kind (the others are refused)
_AI_ROUTES = {
    "Completions": "completions",
    "Messages": "messages",
    "Models": "models",
    "Responses": "responses",
    "AnthropicTokenCount": "anthropicTokenCount",
    "Embeddings": "embeddings",
}


def _backend_ai(val: dict, p: str, problems: list[str]) -> dict:
    """``ai`` (agentgateway's BackendAI) → the ``ai`` backend policy."""
    out: dict[str, Any] = {}
    prompt = val.get("prompt") or {}
    prompts = {
        side: [{"role": str(m["role"]), "content": str(m["content"])} for m in prompt[side]]
        for side in ("prepend", "append")
        if prompt.get(side)
    }
    if prompts:
        out["prompts"] = prompts
    for k in ("defaults", "overrides"):
        if val.get(k):
            out[k] = {str(f["field"]): f.get("value") for f in val[k]}
    if val.get("transformations"):
        out["transformations"] = {str(f["field"]): str(f["expression"]) for f in val["transformations"]}
    if val.get("modelAliases"):
        out["modelAliases"] = {str(k): str(v) for k, v in val["modelAliases"].items()}
    if val.get("promptCaching") is not None:
        out["promptCaching"] = dict(val["promptCaching"])
    if val.get("routes"):
        routes = {}
        for suffix, kind in val["routes"].items():
            if kind in _AI_ROUTES:
                routes[str(suffix)] = _AI_ROUTES[kind]
            else:
                problems.append(f"{p}.routes.{suffix}: {kind} is not supported by agentgw")
        out["routes"] = routes
    if val.get("promptGuard") is not None:
        problems.append(f"{p}.promptGuard: {_NOT_TRANSLATED} (agentgw's ai.promptGuard in a config file is)")
    if val.get("finalTransformations") is not None:
        problems.append(
            f"{p}.finalTransformations: not supported by agentgw (its transformations apply to the request"
            " before it is converted to the provider's format only)"
        )
    return out


def backend(spec: dict, ns: str, r: Resolver, path: str = "spec.backend") -> tuple[dict, list[str]]:
    """``spec.backend`` of a policy, or ``spec.policies`` of an AgentgatewayBackend → backend policies."""
    problems: list[str] = []
    out: dict[str, Any] = {}
    for key, val in (spec or {}).items():
        p = f"{path}.{key}"
        val = val or {}
        if key == "a2a":
            out["a2a"] = {}
        elif key == "mcp":
            for k2, v2 in val.items():
                if k2 == "authorization":
                    out["mcpAuthorization"] = _authorization(v2 or {}, f"{p}.authorization", problems)
                elif k2 == "authentication":
                    problems.append(
                        f"{p}.authentication: not supported by agentgw on a backend (MCP authentication is a"
                        " route policy in agentgw; agentgateway deprecates this field too)"
                    )
                elif k2 == "guardrails":
                    problems.append(
                        f"{p}.guardrails: not supported by agentgw (it has no remote MCP guardrail processors)"
                    )
                else:
                    problems.append(f"{p}.{k2}: not supported by agentgw")
        elif key == "tls":
            out["backendTLS"] = _backend_tls(val, ns, r, p, problems)
        elif key == "auth":
            auth = _backend_auth(val, ns, r, p, problems)
            if auth is not None:
                out["backendAuth"] = auth
        elif key == "http":
            h = {}
            if val.get("requestTimeout") is not None:
                h["requestTimeout"] = duration(val["requestTimeout"])
            if val.get("version"):
                v = str(val["version"])
                if _HTTP_VERSION.fullmatch(v.strip()):
                    h["version"] = v
                else:
                    problems.append(
                        f"{p}.version: {v} to backends is not supported by agentgw (it speaks HTTP1 or HTTP2 to backends)"
                    )
            out["http"] = h
        elif key == "ai":
            out["ai"] = _backend_ai(val, p, problems)
        elif key == "tcp":
            problems.append(
                f"{p}: not supported by agentgw (it has no per-backend TCP keepalive or connect timeout settings)"
            )
        elif key == "tunnel":
            problems.append(f"{p}: not supported by agentgw (it does not reach backends through a proxy)")
        elif key == "health":
            problems.append(
                f"{p}: not supported by agentgw (it does not score backends' health or evict unhealthy ones)"
            )
        elif key == "transformation":
            problems.append(
                f"{p}: not supported by agentgw on a backend (use traffic.transformation on the route or Gateway)"
            )
        elif key == "extAuth":
            problems.append(f"{p}: not supported by agentgw on a backend (use traffic.extAuth on the route or Gateway)")
        else:
            problems.append(f"{p}: not supported by agentgw")
    return out, problems


# -- frontend ---------------------------------------------------------------------------------


_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$")
_QUANTITY_UNITS = {None: 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
_QUANTITY_UNITS.update({"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40})


def byte_size(v: Any, path: str, problems: list[str]) -> int | None:
    """A Kubernetes quantity of bytes (``8192``, ``64Ki``, ``2M``) → bytes."""
    if isinstance(v, int):
        return v
    m = _QUANTITY.match(str(v).strip())
    if m is None:
        problems.append(f"{path}: {v!r} is not a byte quantity (such as 8192, 64Ki or 2Mi)")
        return None
    return int(float(m.group(1)) * _QUANTITY_UNITS[m.group(2)])


#: agentgateway's TLS 1.2 cipher suite names → OpenSSL's (agentgw's listeners use OpenSSL)
_CIPHERS = {
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
}
_H2_REFUSAL = "not supported by agentgw (listeners speak HTTP/1.1 only)"


def _attributes(attrs: dict) -> dict:
    out: dict[str, Any] = {}
    if attrs.get("add"):
        out["add"] = {x["name"]: x["expression"] for x in attrs["add"]}
    if attrs.get("remove"):
        out["remove"] = list(attrs["remove"])
    return out


def _frontend_tls(val: dict, p: str, problems: list[str]) -> dict:
    t: dict[str, Any] = {}
    if val.get("handshakeTimeout") is not None:
        t["handshakeTimeout"] = duration(val["handshakeTimeout"])
    if val.get("alpnProtocols"):
        t["alpn"] = [str(x) for x in val["alpnProtocols"]]
    for src, dst in (("minProtocolVersion", "minVersion"), ("maxProtocolVersion", "maxVersion")):
        if val.get(src) is not None:
            t[dst] = "TLS_V" + str(val[src]).replace(".", "_")
    suites = [str(c) for c in val.get("cipherSuites") or []]
    if suites:
        bad = [c for c in suites if c not in _CIPHERS]
        if bad:
            problems.append(
                f"{p}.cipherSuites: {', '.join(bad)}: not supported by agentgw (it chooses among the TLS 1.2"
                f" suites {', '.join(_CIPHERS)}; TLS 1.3 suites are the TLS library's)"
            )
        else:
            t["cipherSuites"] = [_CIPHERS[c] for c in suites]
    if val.get("keyExchangeGroups"):
        problems.append(f"{p}.keyExchangeGroups: not supported by agentgw (it uses the TLS library's groups)")
    return t


def _frontend_http(val: dict, p: str, problems: list[str]) -> dict:
    h: dict[str, Any] = {}
    if val.get("maxBufferSize") is not None:
        n = byte_size(val["maxBufferSize"], f"{p}.maxBufferSize", problems)
        if n is not None:
            h["maxBufferSize"] = n
    if val.get("http1MaxHeaders") is not None:
        h["http1MaxHeaders"] = int(val["http1MaxHeaders"])
    if val.get("http1IdleTimeout") is not None:
        h["http1IdleTimeout"] = duration(val["http1IdleTimeout"])
    for k in val:
        if k.startswith("http2"):
            problems.append(f"{p}.{k}: {_H2_REFUSAL}")
    if val.get("http1HeaderCase") is not None:
        problems.append(
            f"{p}.http1HeaderCase: not supported by agentgw (it does not keep or choose the case of header names)"
        )
    if val.get("maxConnectionDuration") is not None:
        problems.append(
            f"{p}.maxConnectionDuration: not supported by agentgw (it closes client connections when idle only)"
        )
    return h


def frontend(spec: dict, ns: str, r: Resolver, path: str = "spec.frontend") -> tuple[dict, dict, list[str]]:
    """``spec.frontend`` (Gateway-level) → (``config`` settings, ``frontendPolicies``, problems)."""
    problems: list[str] = []
    cfg: dict[str, Any] = {}
    fp: dict[str, Any] = {}
    for key, val in (spec or {}).items():
        p = f"{path}.{key}"
        val = val or {}
        if key == "tracing":
            t: dict[str, Any] = {}
            if val.get("backendRef"):
                url, err = r.service_url(val["backendRef"], ns, "policy")
                if err:
                    problems.append(f"{p}.backendRef: {err}")
                    continue
                t["otlpEndpoint"] = url
            elif val.get("url") or val.get("endpoint"):
                t["otlpEndpoint"] = str(val.get("url") or val.get("endpoint"))
            else:
                problems.append(f"{p}: needs backendRef or url")
                continue
            proto = str(val.get("protocol") or "GRPC").lower()
            if proto not in ("grpc", "http"):
                problems.append(f"{p}.protocol: must be GRPC or HTTP")
            t["otlpProtocol"] = proto
            for k in ("randomSampling", "clientSampling"):
                if val.get(k) is not None:
                    t[k] = str(val[k])
            if val.get("path"):
                t["path"] = str(val["path"])
            if val.get("attributes"):
                t["fields"] = _attributes(val["attributes"])
            if val.get("resources"):
                problems.append(f"{p}.resources: not supported by agentgw (no tracing resource attributes)")
            if val.get("filter") is not None:
                problems.append(
                    f"{p}.filter: not supported by agentgw (it samples with randomSampling and clientSampling only)"
                )
            cfg["tracing"] = t
        elif key == "accessLog":
            a: dict[str, Any] = {}
            if val.get("filter"):
                a["filter"] = str(val["filter"])
            a.update(_attributes(val.get("attributes") or {}))
            if val.get("otlp") is not None:
                o = val["otlp"] or {}
                host, url_path = _endpoint(o, ns, r, f"{p}.otlp", problems)
                otlp: dict[str, Any] = {"host": host or "", "protocol": str(o.get("protocol") or "GRPC").lower()}
                if o.get("path") or url_path:
                    otlp["path"] = str(o.get("path") or url_path)
                if o.get("filter"):
                    otlp["filter"] = str(o["filter"])
                if o.get("attributes"):
                    otlp["fields"] = _attributes(o["attributes"])
                a["otlp"] = otlp
            fp["accessLog"] = a
        elif key == "tcp":
            ka = val.get("keepalive")
            if ka is not None:
                k2: dict[str, Any] = {"enabled": True}
                for f in ("time", "interval"):
                    if ka.get(f) is not None:
                        k2[f] = duration(ka[f])
                if ka.get("retries") is not None:
                    k2["retries"] = int(ka["retries"])
                fp["tcp"] = {"keepalives": k2}
        elif key == "tls":
            fp["tls"] = _frontend_tls(val, p, problems)
        elif key == "http":
            fp["http"] = _frontend_http(val, p, problems)
        elif key == "networkAuthorization":
            problems.append(f"{p}: not supported by agentgw (it authorizes HTTP requests, not connections)")
        elif key == "proxyProtocol":
            problems.append(f"{p}: not supported by agentgw (it does not read PROXY protocol headers)")
        elif key == "connect":
            problems.append(f"{p}: not supported by agentgw (it has no frontend CONNECT handling)")
        elif key == "metrics":
            problems.append(f"{p}: not supported by agentgw (it adds no metric labels from CEL expressions)")
        else:
            problems.append(f"{p}: not supported by agentgw")
    return cfg, fp, problems
