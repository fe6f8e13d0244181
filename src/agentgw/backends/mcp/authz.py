"""``mcpAuthorization``: CEL rules deciding which tools, prompts and resources a caller sees.

Each rule is a CEL expression (``agentgw.cel``); a caller may use an item when any rule
is true (an empty rule list allows everything). Besides the common variables
(``request``, ``jwt``, ``apiKey``, ``source``, ...), rules see ``mcp``:

* ``mcp.method`` — ``tools/call``, ``tools/list``, ``prompts/get``, ...
* ``mcp.tool.name`` / ``mcp.tool.target`` — the tool's own (unprefixed) name and its target
* ``mcp.prompt.name`` / ``mcp.prompt.target``, ``mcp.resource.uri`` / ``mcp.resource.target``

``tools/list`` and friends are filtered to what the caller may call; a denied call gets a
JSON-RPC error (-32003), not an HTTP error. Decisions are memoised by the CEL layer on the
values the rules read, so listing many tools costs one evaluation per distinct input.
"""

from __future__ import annotations

from ...cel import CelError, RuleSet as _CelRuleSet

__all__ = ["CelError", "McpAuthz", "RuleSet"]


class RuleSet:
    """``rules`` of one ``mcpAuthorization`` block (allow if any is true)."""

    __slots__ = ("impl", "source")

    def __init__(self, exprs: list[str]):
        self.source = list(exprs)
        self.impl = _CelRuleSet(allow=list(exprs))

    def allows(self, ctx) -> bool:
        return self.impl.decide(ctx) is None


class McpAuthz:
    """Route/backend rules plus per-target rules; all that apply must allow."""

    def __init__(self, rulesets: list[RuleSet]):
        self.rulesets = rulesets

    def allows(self, ctx, method: str, target: str, name: str, kind: str, target_rules: RuleSet | None) -> bool:
        if not self.rulesets and target_rules is None:
            return True
        item = {"name": name, "target": target}
        if kind == "resource":
            item["uri"] = name
        mcp = {"method": method, "tool": {"name": "", "target": target}}
        mcp[kind] = item
        ctx.attrs["mcp"] = mcp
        for rs in self.rulesets:
            if not rs.allows(ctx):
                return False
        return target_rules is None or target_rules.allows(ctx)
