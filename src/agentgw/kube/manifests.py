"""Read Kubernetes manifests (multi-document YAML / JSON, `kind: List`) from files or directories."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import yaml


class ManifestError(ValueError):
    pass


def _walk(path: str) -> list[str]:
    if os.path.isfile(path):
        return [path]
    if not os.path.isdir(path):
        raise ManifestError(f"{path}: no such file or directory")
    out = []
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for f in sorted(files):
            if f.endswith((".yaml", ".yml", ".json")):
                out.append(os.path.join(root, f))
    return out


def _flatten(doc: Any) -> Iterable[dict]:
    if not isinstance(doc, dict):
        return
    if doc.get("kind", "").endswith("List") and isinstance(doc.get("items"), list):
        for item in doc["items"]:
            yield from _flatten(item)
        return
    if doc.get("kind") and doc.get("apiVersion"):
        yield doc


def load_manifests(paths: str | list[str]) -> list[dict]:
    """All objects in the given files/directories, in file order (kustomization.yaml skipped)."""
    if isinstance(paths, str):
        paths = [paths]
    objs: list[dict] = []
    for p in paths:
        for f in _walk(p):
            if os.path.basename(f) in ("kustomization.yaml", "kustomization.yml", "Chart.yaml", "values.yaml"):
                continue
            try:
                with open(f, encoding="utf-8") as fh:
                    docs = list(yaml.safe_load_all(fh))
            except yaml.YAMLError as exc:
                raise ManifestError(f"{f}: {exc}") from None
            for d in docs:
                objs.extend(_flatten(d))
    return objs


def manifests_fingerprint(paths: str | list[str]) -> tuple:
    """Cheap change detector for `run --k8s-manifests`: (path, mtime, size) of every file."""
    if isinstance(paths, str):
        paths = [paths]
    out = []
    for p in paths:
        for f in _walk(p):
            try:
                st = os.stat(f)
            except OSError:
                continue
            out.append((f, st.st_mtime_ns, st.st_size))
    return tuple(out)
