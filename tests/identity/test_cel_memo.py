"""The memoised CEL decision: a remembered answer is only ever reused for a request that
binds exactly the same data, so memoising can't change a decision.

Property-tested over request shapes with absent, repeated and look-alike headers, for
the fast key that rule sets over ``request`` members and named headers use, and for the
general key (rules that also read ``jwt``)."""

from __future__ import annotations

from types import SimpleNamespace

from hypothesis import given, settings
from hypothesis import strategies as st

from agentgw.cel import RuleSet
from agentgw.engine.http import Headers

REQUEST_RULES = dict(
    require=['request.headers["x-tenant"] == "acme"'],
    deny=['request.path.startsWith("/admin")', 'request.headers["x-role"] == "guest"'],
    allow=['request.method == "POST" || request.method == "GET"'],
)

names = st.sampled_from(["x-tenant", "x-role", "x-other", "content-type"])
values = st.sampled_from(["acme", "other", "guest", "admin", ""])
requests = st.fixed_dictionaries(
    {
        "method": st.sampled_from(["GET", "POST", "PUT"]),
        "path": st.sampled_from(["/", "/admin", "/admin/x", "/api"]),
        "headers": st.lists(st.tuples(names, values), max_size=5),
        "jwt": st.one_of(st.just(None), st.fixed_dictionaries({"sub": st.sampled_from(["a", "b"])})),
    }
)


def ctx_for(r: dict):
    req = SimpleNamespace(
        method=r["method"], headers=Headers(r["headers"]), query="", scheme="http", client_addr="127.0.0.1", tls=None
    )
    req.host = ""
    attrs = {"jwt": r["jwt"]} if r["jwt"] is not None else {}
    return SimpleNamespace(req=req, path=r["path"], attrs=attrs)


def fresh_decision(rules: RuleSet, ctx) -> str | None:
    return rules._decide(rules.binder.data(rules.binder.values(ctx)))


def test_request_only_rules_use_the_fast_key():
    assert RuleSet(**REQUEST_RULES).binder.fast_key is not None
    assert RuleSet(allow=['jwt.sub == "a"']).binder.fast_key is None


@settings(max_examples=300, deadline=None)
@given(st.lists(requests, min_size=1, max_size=12))
def test_memoised_decisions_equal_fresh_ones(seq):
    rules = RuleSet(**REQUEST_RULES)
    for r in seq:  # one rule set over a sequence: later requests may hit earlier answers
        ctx = ctx_for(r)
        assert rules.decide(ctx) == fresh_decision(rules, ctx)


@settings(max_examples=300, deadline=None)
@given(requests, requests)
def test_fast_keys_are_equal_exactly_when_bound_data_is(a, b):
    binder = RuleSet(**REQUEST_RULES).binder
    ca, cb = ctx_for(a), ctx_for(b)
    same_key = binder.fast_key(ca) == binder.fast_key(cb)
    same_data = binder.data(binder.values(ca)) == binder.data(binder.values(cb))
    assert same_key == same_data


def test_headers_the_rules_do_not_name_leave_the_key_alone():
    binder = RuleSet(**REQUEST_RULES).binder
    base = {"method": "GET", "path": "/api", "headers": [("x-tenant", "acme")], "jwt": None}
    noisy = {**base, "headers": [("content-type", "a"), ("x-tenant", "acme"), ("x-other", "b")]}
    assert binder.fast_key(ctx_for(base)) == binder.fast_key(ctx_for(noisy))
    other = {**base, "headers": [("x-tenant", "other")]}
    assert binder.fast_key(ctx_for(base)) != binder.fast_key(ctx_for(other))


@settings(max_examples=200, deadline=None)
@given(st.lists(requests, min_size=1, max_size=12))
def test_general_key_with_identity_equals_fresh(seq):
    rules = RuleSet(require=['jwt.sub == "a"'], deny=['request.headers["x-role"] == "guest"'])
    for r in seq:
        ctx = ctx_for(r)
        assert rules.decide(ctx) == fresh_decision(rules, ctx)


def test_repeated_header_is_joined_like_the_bound_map():
    rules = RuleSet(require=['request.headers["x-tenant"] == "acme, acme"'])
    ctx = ctx_for({"method": "GET", "path": "/", "headers": [("x-tenant", "acme"), ("x-tenant", "acme")], "jwt": None})
    assert rules.decide(ctx) is None
    single = ctx_for({"method": "GET", "path": "/", "headers": [("x-tenant", "acme")], "jwt": None})
    assert rules.decide(single) == "require rule 0 not satisfied"
