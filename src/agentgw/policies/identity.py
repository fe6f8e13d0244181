"""Compile the identity and authorization policies of one policy block (route or listener).

Called by the config compiler; every problem is reported with the path of the field at
fault and never quotes a credential. Files (JWKS, htpasswd, key lists) are read here,
once per config load; URLs are fetched lazily on first use, on the event loop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..cel import CelError, Expression, RuleSet
from .api_key import ApiKeyAuth, KeyEntry, KeyStore, load_keys_file
from .auth_common import CredentialLocation, HttpSideClient
from .authorization import Authorization
from .basic_auth import BasicAuth, parse_htpasswd
from .ext_authz import ExtAuthz, _Cache, _GrpcTransport
from .jwt_auth import JwtAuth, Provider, TokenVerifier, build_jwks
from .k8s_tokens import ServiceAccountAuth, TokenReviewer

if TYPE_CHECKING:
    from ..proxy.scope import CompileScope


def compile_identity(compiler: CompileScope, p, path: str) -> list:
    """Policies for ``jwtAuth``, ``apiKey``, ``basicAuth``, ``serviceAccountAuth``,
    ``extAuthz`` and ``authorization`` set on ``p`` (a route or listener policy block)."""
    out: list = []
    if p is None:
        return out
    err = compiler.errors.add
    fpath = compiler.path

    def location(loc, where, **kw):
        try:
            return CredentialLocation.from_model(loc, **kw)
        except ValueError as exc:
            err(f"{where}.expression", str(exc))
            return None

    j = getattr(p, "jwt_auth", None)
    if j is not None:
        jp = f"{path}.jwtAuth"
        specs = j.providers if j.providers is not None else [j]
        providers = []
        for i, prov in enumerate(specs):
            pp = f"{jp}.providers[{i}]" if j.providers is not None else jp
            if prov.jwks is None:
                err(f"{pp}.jwks", "OIDC discovery is not supported by this agentgw build yet; set jwks")
                continue
            try:
                src = build_jwks(prov.jwks, fpath)
            except (OSError, ValueError) as exc:
                msg = _jwks_problem(exc)
                err(f"{pp}.jwks", f"cannot load JWKS: {msg}")
                continue
            opts = prov.jwt_validation_options
            providers.append(Provider(prov.issuer, prov.audiences, src, opts.required_claims if opts else ()))
        if j.provider_backend is not None:
            err(f"{jp}.providerBackend", "not supported by this agentgw build yet")
        loc = location(j.location, f"{jp}.location")
        if providers:
            out.append(
                JwtAuth(
                    providers,
                    mode=j.mode,
                    location=loc,
                    preserve_token=j.preserve_token or j.forward,
                    claim_headers=[(c.claim, c.header) for c in (j.claim_to_headers or [])],
                )
            )

    a = getattr(p, "api_key", None)
    if a is not None:
        ap = f"{path}.apiKey"
        entries = [
            KeyEntry(f"keys[{i}]", key=e.key, key_hash=e.key_hash, metadata=e.metadata) for i, e in enumerate(a.keys)
        ]
        if a.keys_file is not None:
            try:
                entries += load_keys_file(fpath(a.keys_file))
            except OSError as exc:
                err(f"{ap}.keysFile", f"cannot read: {exc.strerror or exc}")
            except Exception as exc:
                err(f"{ap}.keysFile", str(exc) if isinstance(exc, ValueError) else "not a valid YAML/JSON key list")
        directory = None
        if a.keys_dir is not None:
            import os

            directory = fpath(a.keys_dir)
            if not os.path.isdir(directory):
                err(f"{ap}.keysDir", "not a directory")
                directory = None
        out.append(
            ApiKeyAuth(KeyStore(entries, directory), mode=a.mode, location=location(a.location, f"{ap}.location"))
        )

    b = getattr(p, "basic_auth", None)
    if b is not None:
        bp = f"{path}.basicAuth"
        h = b.htpasswd
        try:
            if isinstance(h, str):
                text = h
            else:
                with open(fpath(h.file), encoding="utf-8") as f:
                    text = f.read()
            users = parse_htpasswd(text)
        except OSError as exc:
            err(f"{bp}.htpasswd", f"cannot read: {exc.strerror or exc}")
            users = None
        except ValueError as exc:
            err(f"{bp}.htpasswd", str(exc))
            users = None
        if users is not None:
            loc = location(b.authorization_location, f"{bp}.authorizationLocation", default_prefix="Basic ")
            out.append(BasicAuth(users, realm=b.realm, mode=b.mode, location=loc))

    s = getattr(p, "service_account_auth", None)
    if s is not None:
        sp = f"{path}.serviceAccountAuth"
        timeout = float(s.timeout) if s.timeout is not None else 5.0
        ca = fpath(s.ca_file) if s.ca_file else None
        token_file = fpath(s.token_file) if s.token_file else None
        kw = dict(
            mode=s.mode,
            location=location(s.location, f"{sp}.location"),
            principal_header=s.principal_header,
            preserve_token=s.preserve_token,
        )
        if s.jwks is not None and (isinstance(s.jwks, str) or s.jwks.file is not None):
            for attr, key in (("ca_file", "caFile"), ("token_file", "tokenFile"), ("timeout", "timeout")):
                if getattr(s, attr) is not None:
                    err(f"{sp}.{key}", "is only used with tokenReview or a jwks url")
        if s.jwks is not None:
            headers = []
            if token_file:

                def bearer(tf=token_file):
                    with open(tf, encoding="utf-8") as f:
                        return "Bearer " + f.read().strip()

                headers.append(("authorization", bearer))
            try:
                src = build_jwks(s.jwks, fpath, headers=headers, ca_file=ca, timeout=timeout)
            except (OSError, ValueError) as exc:
                msg = _jwks_problem(exc)
                err(f"{sp}.jwks", f"cannot load JWKS: {msg}")
            else:
                verifier = TokenVerifier([Provider(s.issuer, s.audiences, src)])
                out.append(ServiceAccountAuth(verifier=verifier, **kw))
        else:
            try:
                client = HttpSideClient(s.token_review, ca_file=ca, timeout=timeout)
            except (OSError, ValueError) as exc:
                err(f"{sp}.tokenReview", str(exc))
            else:
                out.append(ServiceAccountAuth(reviewer=TokenReviewer(client, s.audiences, token_file), **kw))

    e = getattr(p, "ext_authz", None)
    if e is not None:
        pol = _ext_authz(compiler, e, f"{path}.extAuthz")
        if pol is not None:
            out.append(pol)

    z = getattr(p, "authorization", None)
    if z is not None:
        zp = f"{path}.authorization"
        try:
            for where, src in rule_sources(z, zp):
                try:
                    RuleSet(allow=[src])
                except CelError as exc:
                    err(where, f"invalid CEL expression: {exc}")
            allow, deny, require = z.rule_lists()
            rs = RuleSet(allow=allow, deny=deny, require=require)
        except CelError:
            rs = None
        except ImportError:
            err(zp, "the CEL engine (cel-expr-python) is not installed")
            rs = None
        if rs is not None:
            out.append(Authorization(rs))
    return out


def _jwks_problem(exc: Exception) -> str:
    """Why a JWKS could not be loaded: the file and the system's reason, or that it is not one."""
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    return "not a usable JWKS"


def rule_sources(z, path: str):
    """``(path, CEL text)`` of every rule of an ``authorization`` (string ``rules``,
    ``{allow|deny|require}`` rule objects, the extension lists)."""
    for key in ("rules", "allow", "deny", "require"):
        for i, r in enumerate(getattr(z, key)):
            if isinstance(r, str):
                yield f"{path}.{key}[{i}]", r
            else:
                kind = next(k for k in ("allow", "deny", "require") if getattr(r, k) is not None)
                yield f"{path}.{key}[{i}].{kind}", getattr(r, kind)


def _ext_authz(compiler: CompileScope, e, ep: str):
    from ..config import models as m

    err = compiler.errors.add
    if not isinstance(e, m.ExtAuthz):
        err(f"{ep}.conditional", "conditional extAuthz is not supported by this agentgw build yet")
        return None
    if e.include_request_body is not None:
        err(f"{ep}.includeRequestBody", "not supported by this agentgw build yet")
        return None
    # where
    tls_root = None
    if e.host is not None:
        addr = e.host
    elif e.service is not None:
        addr = f"{e.service.name.hostname}:{e.service.port}"
    else:
        ref = compiler.named.get(e.backend) if e.backend is not None else None
        if ref is None or ref[1].host is None:
            err(f"{ep}.backend", f"no top-level host backend named {e.backend!r}")
            return None
        addr = ref[1].host
    if e.policies is not None:
        for attr, field in type(e.policies).model_fields.items():
            if attr != "backend_tls" and getattr(e.policies, attr) is not None:
                err(f"{ep}.policies.{field.alias or attr}", "not supported for extAuthz yet (only backendTLS)")
    bt = e.policies.backend_tls if e.policies is not None else None
    if bt is not None:
        for attr, key in (
            ("cert", "cert"),
            ("key", "key"),
            ("hostname", "hostname"),
            ("insecure_host", "insecureHost"),
            ("alpn", "alpn"),
        ):
            if getattr(bt, attr) not in (None, False):
                err(f"{ep}.policies.backendTLS.{key}", "not supported for extAuthz yet (only root and insecure)")
    if bt is not None and bt.root:
        tls_root = compiler.path(bt.root)
    timeout = float(e.timeout) if e.timeout is not None else 1.0
    # failure mode
    fm = e.failure_mode
    allow, status = False, 403
    if fm is None or fm == "deny":
        pass
    elif fm == "allow":
        allow = True
    elif (
        isinstance(fm, dict)
        and set(fm) == {"denyWithStatus"}
        and isinstance(fm["denyWithStatus"], int)
        and 200 <= fm["denyWithStatus"] <= 599
    ):
        status = fm["denyWithStatus"]
    else:
        err(f"{ep}.failureMode", "must be allow, deny or {denyWithStatus: <status>}")
        return None
    proto = e.protocol
    common: dict[str, Any] = dict(
        failure_allow=allow, failure_status=status, include_request_headers=e.include_request_headers
    )
    if proto is None or proto.grpc is not None:
        g = dict(proto.grpc or {}) if proto is not None else {}
        if e.cache is not None and e.cache.max_entries > 0:
            err(f"{ep}.cache", "is only supported with the http protocol yet")
        ctx_ext = g.pop("context", None) or {}
        if g.pop("metadata", None) is not None:
            err(f"{ep}.protocol.grpc.metadata", "not supported yet")
        if bt is not None and bt.insecure:
            err(f"{ep}.policies.backendTLS.insecure", "is only supported with the http protocol")
        if g:
            err(f"{ep}.protocol.grpc", f"unknown keys: {', '.join(sorted(map(str, g)))}")
            return None
        if not isinstance(ctx_ext, dict):
            err(f"{ep}.protocol.grpc.context", "must be a map of strings")
            return None
        target = addr if addr.startswith("unix:") else addr.split("://", 1)[-1].rstrip("/")  # grpc reads unix:/p
        use_tls = addr.startswith("https://") or bt is not None
        root = None
        if tls_root:
            try:
                with open(tls_root, "rb") as f:
                    root = f.read()
            except OSError as exc:
                err(f"{ep}.policies.backendTLS.root", f"cannot read: {exc.strerror}")
                return None
        transport = _GrpcTransport(target, timeout, root_ca=root, tls=use_tls)
        return ExtAuthz(grpc=transport, context={str(k): str(v) for k, v in ctx_ext.items()}, **common)
    h = dict(proto.http or {})
    hp = f"{ep}.protocol.http"
    path = h.pop("path", "") or ""
    add = h.pop("addRequestHeaders", None) or {}
    inc = h.pop("includeResponseHeaders", None)
    body_src = h.pop("body", None)
    redirect_src = h.pop("redirect", None)
    meta_src = h.pop("metadata", None) or {}
    if h:
        err(hp, f"unknown keys: {', '.join(sorted(map(str, h)))}")
        return None
    if not isinstance(path, str):
        err(f"{hp}.path", "must be a CEL expression giving the path, or a path starting with /")
        return None
    if not isinstance(add, dict) or not isinstance(meta_src, dict):
        err(hp, "addRequestHeaders and metadata must be maps of CEL expressions")
        return None
    path_expr = None
    if path and not path.startswith("/"):  # agentgateway: a CEL expression
        path_expr = _cel(compiler, path, f"{hp}.path")
        if path_expr is None:
            return None
        path = ""
    literal: dict[str, str] = {}
    header_exprs = []
    for k, v in add.items():
        name = str(k).lower()
        try:
            header_exprs.append((name, Expression(str(v))))
        except CelError:
            if name.startswith(":"):
                err(f"{hp}.addRequestHeaders.{k}", "must be a CEL expression")
                return None
            literal[name] = str(v)  # agentgw's earlier reading: a value as written
    body_expr = _cel(compiler, body_src, f"{hp}.body") if body_src is not None else None
    redirect = _cel(compiler, redirect_src, f"{hp}.redirect") if redirect_src is not None else None
    metadata = []
    for k, v in meta_src.items():
        x = _cel(compiler, str(v), f"{hp}.metadata.{k}")
        if x is not None:
            metadata.append((str(k), x))
    cache = None
    if e.cache is not None and e.cache.max_entries > 0:
        keys = [_cel(compiler, k, f"{ep}.cache.key[{i}]") for i, k in enumerate(e.cache.key)]
        ttl = _cel(compiler, e.cache.ttl, f"{ep}.cache.ttl")
        if ttl is not None and all(k is not None for k in keys):
            cache = _Cache(keys, ttl, e.cache.max_entries)
    url = addr if "://" in addr or addr.startswith("unix:") else f"http://{addr}"
    if bt is not None and addr.startswith("unix:"):
        err(f"{ep}.policies.backendTLS", "not supported with a unix socket address")
        return None
    if bt is not None and url.startswith("http://"):
        url = "https://" + url[len("http://") :]
    try:
        client = HttpSideClient(url, ca_file=tls_root, timeout=timeout, insecure=bool(bt and bt.insecure))
    except (OSError, ValueError) as exc:
        err(ep, f"invalid authorizer address: {exc}")
        return None
    return ExtAuthz(
        http=client,
        http_path=path,
        add_request_headers=literal,
        include_response_headers=list(inc) if inc else None,
        path_expr=path_expr,
        header_exprs=header_exprs,
        body_expr=body_expr,
        redirect=redirect,
        metadata=metadata,
        cache=cache,
        **common,
    )


def _cel(compiler: CompileScope, src, path: str):
    """A compiled CEL expression, or None with the problem reported at ``path``."""
    if not isinstance(src, str):
        compiler.errors.add(path, "must be a CEL expression (a string)")
        return None
    try:
        return Expression(src)
    except CelError as exc:
        compiler.errors.add(path, f"invalid CEL expression: {exc}")
        return None
