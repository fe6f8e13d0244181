"""docs/compatibility.md: every key of agentgateway's config schema and what agentgw does
with it.

The keys come from agentgateway's published schema (``tests/compat/agentgateway/schema/
config.json``, from the same snapshot as the example configs). Each key is looked up in
agentgw's config models along the same path; what agentgw does with it comes from the
accepted-means-enforced walk (``tests/config/test_enforced.py``), which sets every field in
context and records whether the compiled gateway changed (enforced) or the load refused it
(with the reason). ``test_compatibility_table_is_current`` in that module rebuilds the page
and compares it with the committed one; ``AGENTGW_WRITE_COMPAT=1`` writes it instead.
"""

from __future__ import annotations

import json
import typing
from collections import defaultdict
from pathlib import Path

from pydantic import BaseModel
from pydantic.alias_generators import to_camel

from agentgw.config import models as m

SCHEMA = Path(__file__).parent / "agentgateway" / "schema" / "config.json"
PAGE = Path(__file__).resolve().parents[2] / "docs" / "compatibility.md"
MAX_DEPTH = 8

HEADER = """# agentgateway compatibility

Every key of agentgateway's standalone config schema (its `schema/config.json`, from the
snapshot whose example configs `tests/compat` loads), grouped by the schema object that
declares it, with what agentgw does with it:

* **yes**: accepted and acted on (setting it changes the compiled gateway);
* **refused: ...**: the config does not load, with an error naming the key's path and
  this reason (accepted means enforced: nothing is accepted and ignored);
* **refused: unknown field**: agentgw's schema does not have the key (an error naming it).

A key acted on in some places and refused in others says both. The page is generated
from the schema and from agentgw's accepted-means-enforced walk
(`tests/config/test_enforced.py`); a test keeps it current. The example configs
themselves: `tests/compat/test_agentgateway_configs.py`.
"""


def _defs(schema: dict) -> dict:
    return schema.get("$defs") or schema.get("definitions") or {}


def _resolve(node, defs, name=None):
    for _ in range(32):
        if not (isinstance(node, dict) and "$ref" in node):
            break
        name = node["$ref"].rsplit("/", 1)[-1]
        node = defs[name]
    return node, name


def _props(node, defs, name=None, depth=0) -> dict:
    """key -> (child schema, name of the schema object declaring it)."""
    node, name = _resolve(node, defs, name)
    out: dict = {}
    if not isinstance(node, dict) or depth > 8:
        return out
    for k, v in (node.get("properties") or {}).items():
        out[k] = (v, name or "LocalConfig")
    for comb in ("anyOf", "oneOf", "allOf"):
        for alt in node.get(comb) or []:
            for k, v in _props(alt, defs, name, depth + 1).items():
                out.setdefault(k, v)
    items = node.get("items")
    if isinstance(items, dict):
        for k, v in _props(items, defs, name, depth + 1).items():
            out.setdefault(k, v)
    add = node.get("additionalProperties")
    if isinstance(add, dict) and not node.get("properties"):
        pass  # a map: its keys are the user's, not the schema's
    return out


def _is_array(node, defs) -> bool:
    node, _ = _resolve(node, defs)
    if not isinstance(node, dict):
        return False
    if node.get("type") == "array" or (isinstance(node.get("type"), list) and "array" in node["type"]):
        return True
    return any(_is_array(a, defs) for c in ("anyOf", "oneOf") for a in node.get(c) or [])


def _models(tp) -> list[type[BaseModel]]:
    out: list[type[BaseModel]] = []

    def walk(t):
        if isinstance(t, type) and issubclass(t, BaseModel):
            out.append(t)
            return
        for a in typing.get_args(t) or ():
            walk(a)

    walk(tp)
    return out


def _field(classes, k: str):
    for c in classes:
        for name, f in c.model_fields.items():
            if (f.alias or to_camel(name)) == k:
                return c, name
    return None


def _outcome(outcomes: dict[str, set[str]], cls: type, name: str) -> str:
    seen: set[str] = set()
    for c in cls.__mro__:
        seen |= outcomes.get(f"{c.__name__}.{name}", set())
    refusals = sorted(o.removeprefix("refused: ") for o in seen if o.startswith("refused"))
    if not refusals:
        return "yes"
    why = refusals[0].rstrip(".")
    if "enforced" in seen:
        return f"yes; refused in some places: {why}"
    return f"refused: {why}"


def build(outcomes: dict[str, set[str]], schema: dict | None = None) -> str:
    schema = schema if schema is not None else json.loads(SCHEMA.read_text())
    defs = _defs(schema)
    table: dict[str, dict[str, tuple[str, str]]] = defaultdict(dict)

    def rank(st: str) -> int:
        return 0 if st.startswith("refused") else 1 if ";" in st else 2

    def walk(node, classes, path: str, depth: int, stack: frozenset):
        if depth > MAX_DEPTH:
            return
        for k, (child, declared) in sorted(_props(node, defs).items()):
            p = f"{path}.{k}" if path else k
            hit = _field(classes, k)
            st = "refused: unknown field" if hit is None else _outcome(outcomes, *hit)
            cur = table[declared].get(k)
            if cur is None or rank(st) < rank(cur[0]):
                table[declared][k] = (st, p)
            if hit is None or st.startswith("refused"):
                continue
            sub = _models(hit[0].model_fields[hit[1]].annotation)
            target, _ = _resolve(child, defs)
            if not sub or id(target) in stack:
                continue
            walk(child, sub, p + ("[]" if _is_array(child, defs) else ""), depth + 1, stack | {id(target)})

    walk(schema, [m.LocalConfig], "", 0, frozenset())
    keys = sum(len(v) for v in table.values())
    yes = sum(1 for v in table.values() for st, _ in v.values() if st == "yes")
    lines = [HEADER, f"{keys} keys in {len(table)} schema objects; {yes} acted on everywhere they appear.\n"]
    for declared in sorted(table):
        lines.append(f"## `{declared}`\n\n| key | agentgw | e.g. at |\n|---|---|---|")
        for k in sorted(table[declared]):
            st, p = table[declared][k]
            cell = st.replace("|", "\\|")
            lines.append(f"| `{k}` | {cell} | `{p}` |")
        lines.append("")
    return "\n".join(lines)
