"""The package's layers, read from the source (imports inside functions included):

* ``engine`` imports nothing of agentgw outside itself;
* ``proxy`` (the pipeline and its contracts) imports no feature: no policy, backend,
  compiler or process code;
* features (``policies``, ``backends``) never import the pipeline's driver
  (``proxy.pipeline``) or the process, and never reach into the client connection
  (``ex.conn``): they end requests through the request context;
* no module imports ``compile`` except the process, the command line and the Kubernetes
  translator's check (feature compilers get a ``CompileScope``).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import agentgw

ROOT = Path(agentgw.__file__).parent


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every agentgw module ``path`` imports, relative imports resolved."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            # "from . import x" names a module x too
            found.append((node.lineno, mod))
            found += [(node.lineno, f"{mod}.{a.name}") for a in node.names]
    return [(line, m) for line, m in found if m == "agentgw" or m.startswith("agentgw.")]


def _violations(layer: str, allowed) -> list[str]:
    out = []
    for path in sorted((ROOT / layer).rglob("*.py")):
        for line, mod in _imports(path):
            if not allowed(mod):
                out.append(f"{path.relative_to(ROOT.parent)}:{line}: {mod}")
    return out


def _under(mod: str, *packages: str) -> bool:
    return any(mod == f"agentgw.{p}" or mod.startswith(f"agentgw.{p}.") for p in packages)


def test_engine_imports_nothing_outward():
    assert not _violations("engine", lambda m: _under(m, "engine") or m == "agentgw")


def test_proxy_imports_no_feature():
    # "agentgw" alone would be the package's __init__ (the version string): allowed
    ok = ("engine", "proxy", "routing", "telemetry", "config")  # config: the models, read by CompileScope
    assert not _violations("proxy", lambda m: _under(m, *ok) or m == "agentgw")


def test_features_do_not_import_the_pipeline_driver_or_the_process():
    banned = ("proxy.pipeline", "runner", "supervisor", "cli", "admin")
    for layer in ("policies", "backends"):
        assert not _violations(layer, lambda m: not _under(m, *banned)), layer


def test_only_the_process_and_command_line_import_compile():
    users = []
    for path in sorted(ROOT.rglob("*.py")):
        name = _module_name(path)
        if name in ("agentgw.compile", "agentgw.runner", "agentgw.supervisor", "agentgw.cli") or name.startswith("agentgw.kube."):
            continue
        users += [f"{name}:{line}" for line, m in _imports(path) if _under(m, "compile")]
    assert not users, users


def test_features_never_touch_the_client_connection():
    pattern = re.compile(r"\bex\.conn\b|\.ex\.conn\b")
    hits = []
    for layer in ("policies", "backends"):
        for path in sorted((ROOT / layer).rglob("*.py")):
            for i, text in enumerate(path.read_text().splitlines(), 1):
                if pattern.search(text):
                    hits.append(f"{path.relative_to(ROOT.parent)}:{i}: {text.strip()}")
    assert not hits, hits


def test_feature_compilers_use_only_the_public_compile_scope():
    """Feature compilers get a ``CompileScope``: no private member of the compiler is used
    outside ``compile.py``, and nothing is attached to it."""
    pattern = re.compile(r"\b(?:c|compiler|scope)\._[a-z]")
    hits = []
    for path in sorted(ROOT.rglob("*.py")):
        if path.name == "compile.py" and path.parent == ROOT:
            continue
        for i, text in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(text):
                hits.append(f"{path.relative_to(ROOT.parent)}:{i}: {text.strip()}")
    assert not hits, hits
