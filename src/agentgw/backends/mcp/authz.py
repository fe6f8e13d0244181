"""``mcpAuthorization``: CEL rules deciding which tools, prompts and resources a caller sees.

Each rule is a CEL expression (``agentgw.cel``), decided as for the HTTP ``authorization``
policy: a caller may use an item when no ``deny`` rule matches, every ``require`` rule
holds, and -- if there are ``allow`` rules (``rules`` is agentgateway's name for them) --
at least one of them matches (no rules at all allows everything). Besides the common variables
(``request``, ``jwt``, ``apiKey``, ``source``, ...), rules see ``mcp``:

* ``mcp.method`` — ``tools/call``, ``tools/list``, ``prompts/get``, ...
* ``mcp.tool.name`` / ``mcp.tool.target`` — the tool's own (unprefixed) name and its target
* ``mcp.prompt.name`` / ``mcp.prompt.target``, ``mcp.resource.uri`` / ``mcp.resource.target``

``tools/list`` and friends are filtered to what the caller may call; a denied call gets a
JSON-RPC error (-32003), not an HTTP error. Decisions are memoised by the CEL layer on the
values the rules read, so listing many tools costs one evaluation per distinct input.
"""

from __future__ import annotations

from collections.abc import Sequence

from ...cel import CelError
from ...cel import RuleSet as _CelRuleSet

__all__ = ["CelError", "McpAuthz", "RuleSet"]


class RuleSet:
    """One ``mcpAuthorization`` block: ``allow`` (``rules`` plus ``allow``), ``deny`` and
    ``require``, decided together (see `agentgw.cel.RuleSet`)."""

    __slots__ = ("impl",)

    def __init__(self, allow: Sequence[str] = (), deny: Sequence[str] = (), require: Sequence[str] = ()):
        self.impl = _CelRuleSet(allow=list(allow), deny=list(deny), require=list(require))

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
