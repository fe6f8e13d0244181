"""Load a config file (YAML or JSON) into a validated `LocalConfig`.

Steps: parse -> substitute environment variables in string values -> validate.
Every problem found is reported at once as a `ConfigError` whose messages are
``"<path>: <message>"``, with paths written in the file's own key names
(``binds[0].listeners[0].routes[2].backends[0].host``) so they can be found
in the file directly.

Environment substitution runs on the parsed tree rather than on the raw text
(as agentgateway does), so a variable's value can never change the YAML
structure -- a value containing ``": "`` or a newline stays one string.
``$VAR`` and ``${VAR}`` are replaced in string values (not in keys); ``$$`` is
a literal ``$``; a ``$`` not followed by a name or ``{`` is kept as-is (so
bcrypt hashes such as ``$2b$...`` mostly survive, but escape them as ``$$`` to
be safe).  An unset variable is an error naming the variable and the path.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from .models import LocalConfig

__all__ = ["ConfigError", "format_path", "load_config_file", "load_config_text"]


class ConfigError(ValueError):
    """One or more problems in a config file; ``errors`` holds ``"<path>: <message>"`` strings."""

    def __init__(self, errors: list[str]):
        self.errors = list(errors)
        super().__init__("\n".join(self.errors))

    def __str__(self) -> str:
        return "\n".join(self.errors)


# --------------------------------------------------------------------------
# Paths
# --------------------------------------------------------------------------

_SIMPLE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def format_path(loc: Iterable[Any]) -> str:
    """Format a location tuple as ``a.b[0].c``; ``(root)`` for the empty path.

    Segments starting with ``~`` are union-branch tags added by the models and
    are dropped.  Map keys that are not plain identifiers are written ``["key"]``.
    """
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            continue
        part = str(part)
        if part.startswith("~"):
            continue
        if _SIMPLE_KEY.match(part):
            out += f".{part}" if out else part
        else:
            out += "[" + json.dumps(part) + "]"
    return out or "(root)"


# --------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------


_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when available: ~10x faster


class _UniqueKeyLoader(_BaseLoader):  # type: ignore[misc, valid-type]
    """Safe loader that rejects duplicate mapping keys instead of keeping the last."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False):
    loader.flatten_mapping(node)
    mapping: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark, "found unhashable key", key_node.start_mark
            ) from None
        if key in mapping:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark, f"found duplicate key {key!r}", key_node.start_mark
            )
        mapping[key] = loader.construct_object(value_node, deep=deep)
    return mapping


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _parse(text: str, source: str, fmt: str | None) -> Any:
    if fmt is None:
        fmt = "json" if text.lstrip().startswith(("{", "[")) else "yaml"
    fmt = fmt.lower()
    if fmt == "json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError([f"{source}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}"]) from None
    if fmt in ("yaml", "yml"):
        try:
            return yaml.load(text, Loader=_UniqueKeyLoader)
        except yaml.MarkedYAMLError as e:
            mark = e.problem_mark or e.context_mark
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = e.problem or e.context or "syntax error"
            raise ConfigError([f"{source}: invalid YAML{where}: {problem}"]) from None
        except yaml.YAMLError as e:
            raise ConfigError([f"{source}: invalid YAML: {e}"]) from None
    raise ConfigError([f"{source}: unknown config format {fmt!r} (expected yaml or json)"])


# --------------------------------------------------------------------------
# Environment substitution
# --------------------------------------------------------------------------

_VAR = re.compile(r"\$(?:\$|\{([^}]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _substitute(node: Any, env: Mapping[str, str], loc: tuple[Any, ...], errors: list[str]) -> Any:
    if isinstance(node, str):
        if "$" not in node:
            return node

        def repl(m: re.Match[str]) -> str:
            if m.group(0) == "$$":
                return "$"
            name = m.group(1) if m.group(1) is not None else m.group(2)
            if not _NAME.match(name):
                errors.append(f"{format_path(loc)}: invalid environment variable reference {m.group(0)!r}")
                return m.group(0)
            if name not in env:
                errors.append(f"{format_path(loc)}: environment variable {name} is not set")
                return m.group(0)
            return env[name]

        return _VAR.sub(repl, node)
    if isinstance(node, dict):
        return {k: _substitute(v, env, loc + (k,), errors) for k, v in node.items()}
    if isinstance(node, list):
        return [_substitute(v, env, loc + (i,), errors) for i, v in enumerate(node)]
    return node


# --------------------------------------------------------------------------
# Validation errors
# --------------------------------------------------------------------------

_MESSAGE_REWRITES = {
    "extra_forbidden": "unknown field",
    "missing": "required field is missing",
    # pydantic names the Python class here; the file only knows "object".
    "model_type": "expected an object (mapping)",
    "model_attributes_type": "expected an object (mapping)",
    "dict_type": "expected an object (mapping)",
    "list_type": "expected a list",
}


_TAG_NAMES = {
    "~str": "a string",
    "~list": "a list",
    "~obj": "an object",
    "~conditional": "{conditional: [...]}",
    "~file": "{file: ...}",
}


def _message(err: Any) -> str:
    if err["type"] == "union_tag_invalid":
        # A value of the wrong kind for a field with several accepted forms.
        tags = [t.strip().strip("'") for t in str(err.get("ctx", {}).get("expected_tags", "")).split(",")]
        forms = [_TAG_NAMES.get(t, t) for t in tags if t]
        if forms:
            return "expected " + " or ".join(forms)
    return _MESSAGE_REWRITES.get(err["type"], err["msg"])


def _error_lines(exc: ValidationError) -> list[str]:
    lines: list[str] = []
    seen: set[str] = set()
    for err in exc.errors(include_url=False):
        msg = _message(err)
        for prefix in ("Value error, ", "Assertion failed, "):
            if msg.startswith(prefix):
                msg = msg[len(prefix) :]
        line = f"{format_path(err['loc'])}: {msg}"
        if line not in seen:
            seen.add(line)
            lines.append(line)
    return lines


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------


def load_config_text(
    text: str,
    *,
    source: str = "<inline>",
    fmt: str | None = None,
    env: Mapping[str, str] | None = None,
) -> LocalConfig:
    """Parse and validate config text.

    ``fmt`` is ``"yaml"`` or ``"json"``; when omitted, text starting with
    ``{`` is read as JSON and anything else as YAML.  ``env`` defaults to
    ``os.environ``.  Raises `ConfigError`.
    """
    data = _parse(text, source, fmt)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([f"(root): config must be a mapping, got {type(data).__name__}"])
    errors: list[str] = []
    data = _substitute(data, os.environ if env is None else env, (), errors)
    if errors:
        raise ConfigError(errors)
    try:
        return LocalConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_error_lines(e)) from None


def load_config_file(path: str | os.PathLike[str], *, env: Mapping[str, str] | None = None) -> LocalConfig:
    """Load a config file; the format comes from the extension (.json, .yaml, .yml) or is sniffed."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError([f"{p}: cannot read config file: {e.strerror or e}"]) from None
    except UnicodeDecodeError as e:
        raise ConfigError([f"{p}: config file is not valid UTF-8: {e}"]) from None
    ext = p.suffix.lower()
    fmt = {".json": "json", ".yaml": "yaml", ".yml": "yaml"}.get(ext)
    return load_config_text(text, source=str(p), fmt=fmt, env=env)
