"""Command line: ``agentgw run``, ``agentgw validate``, ``agentgw --version``."""

from __future__ import annotations

import argparse
import sys

from . import __version__


def _run(args: argparse.Namespace) -> int:
    if args.k8s_manifests:
        from .kube.cli import cmd_run_manifests

        return cmd_run_manifests(args)
    if not args.file:
        print("agentgw run: -f FILE or --k8s-manifests DIR is required", file=sys.stderr)
        return 2
    from .telemetry.setup import configure_logging

    configure_logging("info", "text")
    if args.workers > 1:
        from .supervisor import run_supervisor

        return run_supervisor(args.file, args.workers)
    import uvloop

    from .runner import run_process

    return uvloop.run(
        run_process(
            args.file,
            control_socket=args.control_socket,
            serve_admin_ports=not args.control_socket,
            claim_socket=args.claim_socket,
        )
    )


def _validate(args: argparse.Namespace) -> int:
    from .compile import check_config_file
    from .config import ConfigError

    try:
        check_config_file(args.file)
    except ConfigError as exc:
        for line in exc.lines:
            print(line, file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"{args.file}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(f"{args.file}: ok")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="agentgw", description="An agent gateway for MCP, A2A and LLM traffic.")
    p.add_argument("--version", action="version", version=f"agentgw {__version__}")
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run the gateway")
    r.add_argument("-f", "--file", help="config file (YAML or JSON)")
    r.add_argument(
        "--k8s-manifests",
        action="append",
        metavar="DIR",
        help="serve the Gateway these Kubernetes manifests define (repeatable)",
    )
    r.add_argument(
        "--gateway", metavar="NS/NAME", help="with --k8s-manifests: the Gateway to serve when there are several"
    )
    r.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes sharing this gateway's ports (SO_REUSEPORT among themselves only)",
    )
    r.add_argument("--control-socket", help=argparse.SUPPRESS)
    r.add_argument("--claim-socket", help=argparse.SUPPRESS)  # a --workers worker: the supervisor decides the ports
    r.set_defaults(fn=_run)
    v = sub.add_parser("validate", help="check a config file and exit")
    v.add_argument("-f", "--file", required=True)
    v.set_defaults(fn=_validate)
    from .kube.cli import add_parsers as _add_k8s_parsers

    _add_k8s_parsers(sub)
    args = p.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    raise SystemExit(main())
