"""The runtime package stands alone: importing any module under ``agentgw`` never imports
the demo package (``agentgw_demo``) or moto (a test and demo extra, not a runtime dependency)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import agentgw

FORBIDDEN = ("agentgw_demo", "moto")

# Runs in a fresh interpreter so nothing the test session already imported counts; prints
# every module under agentgw, and for each forbidden package the module whose import first
# brought it in.
PROBE = """
import importlib, json, pkgutil, sys
import agentgw
forbidden = %r
def loaded():
    return sorted(n for n in sys.modules if n.split(".")[0] in forbidden)
modules, culprits, errors = [], {}, {}
def onerror(name):
    errors[name] = repr(sys.exc_info()[1])
for info in pkgutil.walk_packages(agentgw.__path__, "agentgw.", onerror=onerror):
    if info.name.rsplit(".", 1)[-1] == "__main__":
        continue  # running it is the CLI, not an import
    modules.append(info.name)
    before = set(loaded())
    try:
        importlib.import_module(info.name)
    except Exception as exc:
        errors[info.name] = repr(exc)
    for name in set(loaded()) - before:
        culprits.setdefault(name.split(".")[0], info.name)
print(json.dumps({"modules": modules, "culprits": culprits, "errors": errors, "loaded": loaded()}))
"""


def test_importing_every_agentgw_module_imports_neither_demo_nor_moto(tmp_path):
    out = subprocess.run(
        [sys.executable, "-c", PROBE % (FORBIDDEN,)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert not report["errors"], report["errors"]
    # The walk reached the whole package, its subpackages included.
    modules = set(report["modules"])
    assert len(modules) > 50
    for name in (
        "agentgw.proxy.pipeline",
        "agentgw.engine.server",
        "agentgw.backends.aws.credentials",
        "agentgw.kube.controller",
    ):
        assert name in modules
    assert not report["culprits"], f"imported by: {report['culprits']}"
    assert not report["loaded"], report["loaded"]


def test_no_agentgw_source_imports_demo_or_moto_even_lazily():
    """Imports inside functions run only on some paths; the source must not name them at all."""
    root = Path(agentgw.__file__).parent
    offenders = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                if name.split(".")[0] in FORBIDDEN:
                    offenders.append(f"{path.relative_to(root.parent)}:{node.lineno}: {name}")
    assert not offenders, offenders
    assert not list((root / "demo").glob("*.py")), "the demo servers live in agentgw_demo, outside the runtime package"
