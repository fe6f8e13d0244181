"""``authorization``: CEL rules over the request and the identities found so far.

``rules`` (agentgateway's key) and ``allow``: the request is allowed if any matches;
``deny``: any match refuses (a rule that fails to evaluate refuses too); ``require``:
every one must be true. A refused request gets 403 ``forbidden`` naming the failed check
(``deny rule 0 matched``...). Rules are compiled once per config load; see
:mod:`agentgw.cel` for the variables and how they are bound.
"""

from __future__ import annotations

from ..cel import RuleSet
from ..proxy.policy import Policy
from .auth_common import forbidden


class Authorization(Policy):
    order = 40
    NAME = "authorization"

    def __init__(self, rules: RuleSet):
        self.rules = rules

    def on_request(self, ctx):
        failed = self.rules.decide(ctx)
        if failed is None:
            return None
        return forbidden(self.NAME, failed)
