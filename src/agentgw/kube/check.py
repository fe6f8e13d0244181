"""Never report ``Accepted`` for a config the proxy would refuse.

`translate_checked` translates, then puts each Gateway's config through the proxy's own
path — `agentgw.config.load_config_text` (the config model, environment substitution) and
`agentgw.compile.compile_config` (what ``agentgw validate`` and a starting or reloading proxy
run) — with the files it refers to written beside it. A failure is traced back, through the
config's field provenance (`GatewayOutput.sources`), to the object that produced the failing
part (an HTTPRoute, a policy, a backend, the parameters' ``rawConfig``); that object is
refused (``Accepted=False``, the proxy's message) and the world translated again without
it. A failure that belongs to no single object (or to the Gateway itself: a listener, its
certificate) refuses the Gateway: it gets no new config and the proxies keep the last one.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping

from .. import compile as _compile
from ..config import ConfigError, load_config_text
from . import CONTROLLER_NAME
from .cli import dump_yaml
from .objects import meta, ns_of
from .output import GatewayOutput, Result, blame
from .policies import secret_data
from .translate import Translator

MAX_ROUNDS = 16


class _NoServices:
    """What ``agentgw validate`` compiles with: no connection pool, no metrics."""

    pool = None
    on_upstream_error = None


def proxy_errors(g: GatewayOutput, env: Mapping[str, str] | None = None) -> list[str]:
    """The proxy's verdict on ``g``'s config: ``[]`` when it would load it, else its errors."""
    try:
        cfg = load_config_text(
            dump_yaml(g.config),
            source=f"Gateway {g.namespace}/{g.name}",
            fmt="yaml",
            env=env if env is not None else {},
        )
    except ConfigError as exc:
        return list(exc.errors)
    with tempfile.TemporaryDirectory(prefix="agentgw-check-") as d:
        for fname, content in g.files.items():
            with open(os.path.join(d, fname), "w", encoding="utf-8") as f:
                f.write(content)
        try:
            _compile.compile_config(cfg, _NoServices(), d)
        except ConfigError as exc:
            return list(exc.errors)
        except Exception as exc:
            return [f"(root): the config cannot be compiled: {type(exc).__name__}: {exc}"]
    return []


def pod_env(
    g: GatewayOutput, objects_by_key: Mapping[tuple, dict] | None = None, extra: list | None = None
) -> dict[str, str]:
    """The environment the proxy's container gets (what ``$VAR`` in ``rawConfig`` can name).

    Literal values are used as they are; values from Secrets and ConfigMaps are read when
    those are at hand; other references (field paths, resources) get a stand-in value.
    """
    env = {"POD_NAME": f"{g.name}-0", "POD_NAMESPACE": g.namespace, "AGENTGW_GATEWAY": f"{g.namespace}/{g.name}"}
    for e in list(extra or []) + list((g.parameters or {}).get("env") or []):
        if not isinstance(e, dict) or not e.get("name"):
            continue
        if "value" in e:
            env[e["name"]] = str(e["value"])
            continue
        vf = e.get("valueFrom") or {}
        val = "x"
        for key, kind in (("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap")):
            ref = vf.get(key)
            if ref and objects_by_key is not None:
                o = objects_by_key.get(("", kind, g.namespace, ref.get("name", "")))
                data = (secret_data(o) if kind == "Secret" else dict(o.get("data") or {})) if o else {}
                if ref.get("key") in data:
                    val = str(data[ref["key"]])
        if (vf.get("fieldRef") or {}).get("fieldPath") == "metadata.namespace":
            val = g.namespace
        env[e["name"]] = val
    return env


def translate_checked(
    objects: list[dict],
    controller_name: str = CONTROLLER_NAME,
    offline: bool = False,
    redis_url: str | None = None,
    prepare: Callable[[GatewayOutput], None] | None = None,
    env: Callable[[GatewayOutput], Mapping[str, str]] | Mapping[str, str] | None = None,
) -> Result:
    """`translate`, then the proxy's config validation and compiler on every Gateway's config.

    ``prepare`` finishes a Gateway's output the way the caller will ship it (the controller
    adds its defaults) before it is checked; ``env`` is the proxy's environment (a mapping, or
    a function of the Gateway; by default the pod environment `pod_env` derives).
    """
    by_key = {}
    for o in objects:
        if isinstance(o, dict) and o.get("kind"):
            av = o.get("apiVersion", "")
            by_key[(av.split("/")[0] if "/" in av else "", o["kind"], ns_of(o), meta(o).get("name", ""))] = o
    refused: dict[tuple, list[str]] = {}
    failed: dict[tuple[str, str], str] = {}
    res = Result()
    for _ in range(MAX_ROUNDS):
        res = Translator(objects, controller_name, offline, redis_url, refused=refused, failed_gateways=failed).run()
        progress = False
        for key, g in sorted(res.gateways.items()):
            if prepare is not None:
                prepare(g)
            e = env(g) if callable(env) else (env if env is not None else pod_env(g, by_key))
            errs = proxy_errors(g, e)
            if not errs:
                continue
            gkey = ("gateway.networking.k8s.io", "Gateway", g.namespace, g.name)
            whole = []
            for err in errs:
                path = err.split(":", 1)[0]
                objs = blame(path, g.sources) or {gkey}
                if gkey in objs or not (objs - set(refused)):
                    whole.append(err)
                    continue
                for o in objs:
                    # a listener (5-tuple key) is told the proxy's message as it is
                    refused.setdefault(o, []).append(
                        err if len(o) == 5 else f"the proxy refuses the config made from it: {err}"
                    )
                progress = True
            if whole:
                failed[key] = (
                    "the proxy refuses the config made for it: "
                    + "; ".join(whole[:10])
                    + (f"; and {len(whole) - 10} more" if len(whole) > 10 else "")
                )
                progress = True
        if not progress:
            return res
    # should not happen (each round refuses something more); never ship what was not checked
    for key in list(res.gateways):
        res.errors.append(f"Gateway {key[0]}/{key[1]}: the config could not be checked")
        del res.gateways[key]
    return res


__all__ = ["pod_env", "proxy_errors", "translate_checked"]
