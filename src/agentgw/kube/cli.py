"""``agentgw k8s translate``, ``agentgw run --k8s-manifests`` and ``agentgw controller``."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

import yaml

from . import CONTROLLER_NAME
from .manifests import ManifestError, load_manifests, manifests_fingerprint
from .output import Result


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data):
        return True


def dump_yaml(obj) -> str:
    return yaml.dump(obj, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True)


def status_documents(res: Result) -> list[dict]:
    out = []
    for (g, kind, ns, name), st in sorted(res.status.items()):
        ref = {"apiGroup": g, "kind": kind, "name": name}
        if ns:
            ref["namespace"] = ns
        out.append({"object": ref, "status": st})
    return out


def _translate_paths(paths: list[str], controller_name: str, redis_url: str | None = None, env=None) -> Result:
    """Translate, validate and check the manifests as the controller does (`agentgw.kube.check`)."""
    from .check import translate_checked

    return translate_checked(
        load_manifests(paths), controller_name=controller_name, offline=True, redis_url=redis_url or None, env=env
    )


def write_outputs(res: Result, out_dir: str) -> list[str]:
    """Write ``<ns>.<gateway>/config.yaml`` (+ TLS files beside it) for every Gateway; return the config paths."""
    paths = []
    for (ns, name), g in sorted(res.gateways.items()):
        d = os.path.join(out_dir, f"{ns}.{name}")
        os.makedirs(d, exist_ok=True)
        for fname, content in g.files.items():
            _atomic_write(os.path.join(d, fname), content)
        p = os.path.join(d, "config.yaml")
        _atomic_write(p, dump_yaml(g.config))
        paths.append(p)
    return paths


def _atomic_write(path: str, text: str) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def cmd_translate(args: argparse.Namespace) -> int:
    try:
        res = _translate_paths(args.file, args.controller_name, args.redis_url)
    except ManifestError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    docs = []
    for (ns, name), g in sorted(res.gateways.items()):
        docs.append(f"# Gateway {ns}/{name}\n" + dump_yaml(g.config))
        if g.files and not args.output:
            docs[-1] += "".join(
                f"# + file {f} ({len(c)} bytes, from a Secret/ConfigMap)\n" for f, c in sorted(g.files.items())
            )
    if args.output:
        for p in write_outputs(res, args.output):
            print(p)
    else:
        sys.stdout.write("---\n".join(docs) if docs else "# no Gateway handled by this controller in these manifests\n")
    if args.status:
        sys.stdout.write("---\n# status\n" + dump_yaml(status_documents(res)))
    for n in res.notes:
        print(f"note: {n}", file=sys.stderr)
    for e in res.errors:
        print(f"error: {e}", file=sys.stderr)
    return 1 if res.errors else 0


def cmd_run_manifests(args: argparse.Namespace) -> int:
    """Translate the manifests, serve the one Gateway they define, and re-translate on change."""
    import asyncio

    import uvloop

    from ..runner import run_process

    paths = args.k8s_manifests
    try:
        res = _translate_paths(paths, CONTROLLER_NAME, os.environ.get("AGENTGW_REDIS_URL"), env=os.environ)
    except ManifestError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    for n in res.notes:
        print(f"note: {n}", file=sys.stderr)
    for e in res.errors:
        print(f"warning: {e}", file=sys.stderr)
    if not res.gateways:
        print("no Gateway to serve in these manifests", file=sys.stderr)
        return 1
    names = sorted(res.gateways)
    if args.gateway:
        want = tuple(args.gateway.split("/", 1)) if "/" in args.gateway else None
        names = [k for k in names if (want and k == want) or (not want and k[1] == args.gateway)]
        if not names:
            print(f"no Gateway {args.gateway!r} in these manifests", file=sys.stderr)
            return 1
    elif len(names) > 1:
        print(
            "several Gateways in these manifests; pick one with --gateway NS/NAME: "
            + ", ".join(f"{a}/{b}" for a, b in names),
            file=sys.stderr,
        )
        return 1
    key = names[0]
    out_dir = tempfile.mkdtemp(prefix="agentgw-k8s-")

    def regenerate() -> None:
        r = _translate_paths(paths, CONTROLLER_NAME, os.environ.get("AGENTGW_REDIS_URL"), env=os.environ)
        if key in r.gateways:
            write_outputs(Result(gateways={key: r.gateways[key]}), out_dir)
        for e in r.errors:
            print(f"warning: {e}", file=sys.stderr)

    write_outputs(Result(gateways={key: res.gateways[key]}), out_dir)
    config_path = os.path.join(out_dir, f"{key[0]}.{key[1]}", "config.yaml")
    print(f"serving Gateway {key[0]}/{key[1]} from {config_path}", file=sys.stderr)

    async def main() -> int:
        async def watch() -> None:
            last = manifests_fingerprint(paths)
            while True:
                await asyncio.sleep(1.0)
                fp = manifests_fingerprint(paths)
                if fp != last:
                    last = fp
                    try:
                        regenerate()
                    except ManifestError as exc:
                        print(f"warning: {exc}", file=sys.stderr)

        t = asyncio.get_running_loop().create_task(watch())
        try:
            return await run_process(config_path)
        finally:
            t.cancel()

    from ..telemetry.setup import configure_logging

    configure_logging("info", "text")
    return uvloop.run(main())


def cmd_controller(args: argparse.Namespace) -> int:
    import uvloop

    from ..telemetry.setup import configure_logging

    try:
        from .client import KubeConfigError
        from .controller import run_controller
    except ImportError as exc:
        print(f"agentgw controller needs the 'kube' extra: pip install 'agentgw[kube]' ({exc})", file=sys.stderr)
        return 1
    configure_logging("info", "text")
    try:
        return uvloop.run(
            run_controller(
                controller_name=args.controller_name,
                namespace=args.namespace,
                image=args.proxy_image,
                kubeconfig=args.kubeconfig,
                context=args.context,
            )
        )
    except KubeConfigError as exc:
        print(f"agentgw controller: {exc}", file=sys.stderr)
        return 1


def add_parsers(sub) -> None:
    k = sub.add_parser("k8s", help="Kubernetes tools")
    ks = k.add_subparsers(dest="k8s_cmd", required=True)
    t = ks.add_parser("translate", help="print the agentgw config a set of Kubernetes manifests produces")
    t.add_argument("-f", "--file", action="append", required=True, help="manifest file or directory (repeatable)")
    t.add_argument("--status", action="store_true", help="also print the status every object would get")
    t.add_argument("-o", "--output", help="write <ns>.<gateway>/config.yaml (+ TLS files) under this directory")
    t.add_argument("--controller-name", default=CONTROLLER_NAME)
    t.add_argument(
        "--redis-url",
        default=os.environ.get("AGENTGW_REDIS_URL"),
        help="RateLimitConfig limits become globalRateLimit counted in this Redis (default: $AGENTGW_REDIS_URL; without: per-replica localRateLimit)",
    )
    t.set_defaults(fn=cmd_translate)
    c = sub.add_parser("controller", help="run the Kubernetes controller (in a cluster)")
    c.add_argument("--controller-name", default=os.environ.get("AGENTGW_CONTROLLER_NAME", CONTROLLER_NAME))
    c.add_argument(
        "--namespace",
        default=os.environ.get("AGENTGW_WATCH_NAMESPACE") or None,
        help="watch one namespace (default: all)",
    )
    c.add_argument("--proxy-image", default=os.environ.get("AGENTGW_PROXY_IMAGE", "ghcr.io/agentgw/agentgw:0.1.0"))
    c.add_argument(
        "--kubeconfig",
        help="kubeconfig file (default: $KUBECONFIG, else the pod's service account, else ~/.kube/config)",
    )
    c.add_argument("--context", help="kubeconfig context to use (default: its current-context)")
    c.set_defaults(fn=cmd_controller)
