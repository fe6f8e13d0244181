"""Load a config file (YAML or JSON) into a validated `LocalConfig`.

Steps: parse -> substitute environment variables in string values -> validate.
Every problem found is reported at once as a `ConfigError` whose messages are
``"<path>: <message>"``, with paths written in the file's own key names
(``binds[0].listeners[0].routes[2].backends[0].host``) so they can be found
in the file directly.  For a file, each message is also placed in it
(`ConfigError.lines`: ``"<file>:<line>:<column>: <path>: <message>"``, the line
and column of the key at fault, or of its closest enclosing key when the key
is missing), and an unknown key gets the closest valid key of its object as a
hint (``unknown field; did you mean 'audiences'?``).  An empty file (nothing
but comments or blank lines) is an error: it is far more likely a mistake, or
a file caught half-written, than a wish to serve nothing.

Environment substitution runs on the parsed tree rather than on the raw text
(as agentgateway does), so a variable's value can never change the YAML
structure -- a value containing ``": "`` or a newline stays one string.
``$VAR``, ``${VAR}`` and ``${VAR:-default}`` (the default when VAR is unset or
empty, as in a shell) are replaced in string values (not in keys); ``$$`` is
a literal ``$``; a ``$`` not followed by a name or ``{`` is kept as-is (so
bcrypt hashes such as ``$2b$...`` mostly survive, but escape them as ``$$`` to
be safe).  An unset variable is an error naming the variable and the path.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from .models import LocalConfig

__all__ = ["ConfigError", "SourceMap", "format_path", "load_config_file", "load_config_text", "read_config_file"]


class ConfigError(ValueError):
    """One or more problems in a config file; ``errors`` holds ``"<path>: <message>"`` strings.

    ``lines`` (and ``str()``) are the same messages placed in the file when the error
    came from one (see `locate`): ``"<file>:<line>:<column>: <path>: <message>"``.
    """

    def __init__(self, errors: list[str], where: list[str | None] | None = None):
        self.errors = list(errors)
        self.where: list[str | None] = list(where) if where is not None else [None] * len(self.errors)
        super().__init__("\n".join(self.errors))

    @property
    def lines(self) -> list[str]:
        return [f"{w}: {e}" if w else e for e, w in zip(self.errors, self.where)]

    def locate(self, source: SourceMap) -> ConfigError:
        """This error with each message placed in ``source`` (messages already placed,
        and those naming the file itself, are kept as they are)."""
        where = [w if w is not None else source.where(e) for e, w in zip(self.errors, self.where)]
        return ConfigError(self.errors, where)

    def __str__(self) -> str:
        return "\n".join(self.lines)


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


_PATH_TOKEN = re.compile(r'\.?([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]')


def parse_path(text: str) -> tuple[list[str | int], str] | None:
    """Split ``"a.b[0][\"k\"]: rest"`` into ``(["a", "b", 0, "k"], "rest")``; None when
    ``text`` does not start with a path as `format_path` writes it."""
    if text.startswith("(root): "):
        return [], text[8:]
    segs: list[str | int] = []
    pos = 0
    while True:
        m = _PATH_TOKEN.match(text, pos)
        if m is None or (m.group(1) is not None and segs and not m.group(0).startswith(".")):
            break
        if m.group(1) is not None:
            segs.append(m.group(1))
        elif m.group(2) is not None:
            segs.append(int(m.group(2)))
        else:
            segs.append(json.loads(m.group(3)))
        pos = m.end()
    if not segs or not text.startswith(": ", pos):
        return None
    return segs, text[pos + 2 :]


class SourceMap:
    """Where the keys of a config file are: turns an error's path into ``file:line:column``.

    The document is composed (PyYAML keeps each node's position) only when an error
    needs placing, so a file that loads cleanly costs nothing extra.
    """

    def __init__(self, source: str, text: str):
        self.source = source
        self.text = text
        self._root: Any = False  # not composed yet

    def _document(self) -> Any:
        if self._root is False:
            try:
                self._root = yaml.compose(self.text, Loader=_BaseLoader)
            except yaml.YAMLError:
                self._root = None
        return self._root

    def position(self, segs: list[str | int]) -> tuple[int, int] | None:
        """1-based (line, column) of the key or list item ``segs`` names; of its closest
        enclosing key when it is not in the file; None for the root."""
        node, mark = self._document(), None
        for seg in segs:
            if isinstance(node, yaml.MappingNode):
                for k, v in node.value:
                    if isinstance(k, yaml.ScalarNode) and k.value == str(seg):
                        node, mark = v, k.start_mark
                        break
                else:
                    break
            elif isinstance(node, yaml.SequenceNode) and isinstance(seg, int) and 0 <= seg < len(node.value):
                node = node.value[seg]
                mark = node.start_mark
            else:
                break
        return (mark.line + 1, mark.column + 1) if mark is not None else None

    def where(self, error: str) -> str | None:
        """``"file:line:column"`` for an ``"<path>: <message>"`` error, ``"file"`` when its
        path is not in the file, None for a message that already names the file."""
        if error.startswith(self.source + ":"):
            return None
        parsed = parse_path(error)
        pos = self.position(parsed[0]) if parsed else None
        return f"{self.source}:{pos[0]}:{pos[1]}" if pos else self.source


# --------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------


_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when available: ~10x faster


class _UniqueKeyLoader(_BaseLoader):  # type: ignore[misc, valid-type]  # a base chosen at import
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
            default = None
            if m.group(1) is not None and ":-" in name:  # ${VAR:-default}: unset or empty
                name, default = name.split(":-", 1)
            if not _NAME.match(name):
                errors.append(f"{format_path(loc)}: invalid environment variable reference {m.group(0)!r}")
                return m.group(0)
            if default is not None and not env.get(name):
                return _VAR.sub(repl, default)
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


def _leaf_types(tp: Any) -> list[Any]:
    """The alternatives ``tp`` stands for: Optional, unions and Annotated unwrapped."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _leaf_types(typing.get_args(tp)[0])
    if origin is typing.Union or origin is types.UnionType:
        return [leaf for arg in typing.get_args(tp) for leaf in _leaf_types(arg)]
    return [] if tp is type(None) else [tp]


def _keys_at(loc: Iterable[Any]) -> set[str]:
    """The keys the object at ``loc`` (a pydantic error location) accepts."""
    current: list[Any] = [LocalConfig]
    for seg in loc:
        if isinstance(seg, str) and seg.startswith("~"):
            continue  # a union branch tag: every alternative is still in ``current``
        nxt: list[Any] = []
        for tp in current:
            origin, args = typing.get_origin(tp), typing.get_args(tp)
            if isinstance(tp, type) and issubclass(tp, BaseModel) and isinstance(seg, str):
                for name, f in tp.model_fields.items():
                    if seg in (f.alias, name):
                        nxt.extend(_leaf_types(f.annotation))
            elif origin in (list, tuple, set, frozenset) and isinstance(seg, int) and args:
                nxt.extend(_leaf_types(args[0]))
            elif origin is dict and len(args) == 2:
                nxt.extend(_leaf_types(args[1]))
        current = nxt
    return {
        f.alias or name
        for tp in current
        if isinstance(tp, type) and issubclass(tp, BaseModel)
        for name, f in tp.model_fields.items()
    }


def _did_you_mean(key: str, valid: Iterable[str]) -> str | None:
    """The valid key closest to ``key`` (case, ``_`` and ``-`` aside), if any is close."""
    norm = {k.lower().replace("_", "").replace("-", ""): k for k in valid}
    want = key.lower().replace("_", "").replace("-", "")
    if want in norm:
        return norm[want]
    best = difflib.get_close_matches(want, list(norm), n=1)
    return norm[best[0]] if best else None


def _error_lines(exc: ValidationError) -> list[str]:
    lines: list[str] = []
    seen: set[str] = set()
    for err in exc.errors(include_url=False):
        msg = _message(err)
        if err["type"] == "extra_forbidden" and err["loc"] and isinstance(err["loc"][-1], str):
            hint = _did_you_mean(err["loc"][-1], _keys_at(err["loc"][:-1]))
            if hint is not None:
                msg += f"; did you mean {hint!r}?"
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
        raise ConfigError([f"{source}: the config is empty"])
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


def read_config_file(
    path: str | os.PathLike[str], *, env: Mapping[str, str] | None = None, source: str | None = None
) -> tuple[LocalConfig, SourceMap]:
    """Load a config file, and return with it the `SourceMap` that places later errors
    (the compile step's) in it.  ``source`` is the file's name in messages (default:
    ``path`` as given).  Raises `ConfigError`, its messages placed in the file."""
    p = Path(path)
    name = str(p) if source is None else source
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError([f"{name}: cannot read config file: {e.strerror or e}"]) from None
    except UnicodeDecodeError as e:
        raise ConfigError([f"{name}: config file is not valid UTF-8: {e}"]) from None
    ext = p.suffix.lower()
    fmt = {".json": "json", ".yaml": "yaml", ".yml": "yaml"}.get(ext)
    where = SourceMap(name, text)
    try:
        return load_config_text(text, source=name, fmt=fmt, env=env), where
    except ConfigError as exc:
        raise exc.locate(where) from None


def load_config_file(path: str | os.PathLike[str], *, env: Mapping[str, str] | None = None) -> LocalConfig:
    """Load a config file; the format comes from the extension (.json, .yaml, .yml) or is sniffed."""
    return read_config_file(path, env=env)[0]
