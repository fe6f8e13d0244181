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

#: the ``http.version`` values the config compiler accepts (agentgw speaks HTTP/1.1 to backends)
_HTTP1 = re.compile(r"(?i)(HTTP/?)?1(\.1)?")

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
                else:
                    problems.append(f"{p}.{k2}: not supported by agentgw")
        elif key == "tls":
            t: dict[str, Any] = {}
            if val.get("sni"):
                t["hostname"] = val["sni"]
            if val.get("insecureSkipVerify"):
                t["insecure"] = True
            if val.get("alpnProtocols"):
                t["alpn"] = list(val["alpnProtocols"])
            for i, ref in enumerate(val.get("caCertificateRefs") or []):
                cm = r.config_map(ns, ref.get("name", ""))
                if cm is None or "ca.crt" not in (cm.get("data") or {}):
                    problems.append(
                        f"{p}.caCertificateRefs[{i}]: ConfigMap {ns}/{ref.get('name')} with key ca.crt not found"
                    )
                else:
                    t["root"] = ("configmap", ns, ref["name"])  # replaced by a file path by the translator
            out["backendTLS"] = t
        elif key == "auth":
            if "secretRef" in val:
                ref = val["secretRef"] or {}
                sec = r.secret(ns, ref.get("name", ""))
                if sec is None:
                    problems.append(f"{p}.secretRef: Secret {ns}/{ref.get('name')} not found")
                else:
                    data = secret_data(sec)
                    v = data.get("Authorization") or (next(iter(data.values())) if len(data) == 1 else None)
                    if v is None:
                        problems.append(f"{p}.secretRef: Secret {ns}/{ref.get('name')} has no Authorization key")
                    else:
                        out["backendAuth"] = {"key": v.removeprefix("Bearer ").strip()}
            elif "key" in val:
                out["backendAuth"] = {"key": str(val["key"])}
            elif "passthrough" in val:
                out["backendAuth"] = {"passthrough": {}}
            elif "aws" in val:
                a = val["aws"] or {}
                out["backendAuth"] = {"aws": {k: a[k] for k in ("region", "serviceName") if k in a}}
            else:
                problems.append(f"{p}: needs secretRef, key, passthrough or aws")
        elif key == "http":
            h = {}
            if val.get("requestTimeout") is not None:
                h["requestTimeout"] = duration(val["requestTimeout"])
            if val.get("version"):
                v = str(val["version"])
                if _HTTP1.fullmatch(v.strip()):
                    h["version"] = v
                else:
                    problems.append(
                        f"{p}.version: {v} to backends is not supported by agentgw (it speaks HTTP/1.1 to backends; use HTTP1 or leave it unset)"
                    )
            out["http"] = h
        else:
            problems.append(f"{p}: not supported by agentgw")
    return out, problems


# -- frontend ---------------------------------------------------------------------------------


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
            elif val.get("endpoint"):
                t["otlpEndpoint"] = str(val["endpoint"])
            else:
                problems.append(f"{p}: needs backendRef or endpoint")
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
            cfg["tracing"] = t
        elif key == "accessLog":
            a: dict[str, Any] = {}
            if val.get("filter"):
                a["filter"] = str(val["filter"])
            attrs = val.get("attributes") or {}
            if attrs.get("add"):
                a["add"] = {x["name"]: x["expression"] for x in attrs["add"]}
            if attrs.get("remove"):
                a["remove"] = list(attrs["remove"])
            fp["accessLog"] = a
        else:
            problems.append(f"{p}: not supported by agentgw")
    return cfg, fp, problems
