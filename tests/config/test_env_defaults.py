"""``${VAR:-default}`` in config values, as agentgateway's shell-style expansion reads it."""

from __future__ import annotations

import pytest

from agentgw.config import ConfigError
from agentgw.config.loader import load_config_text

DOC = """
binds:
- port: 3000
  listeners:
  - routes:
    - name: "${ROUTE:-fallback}"
      backends:
      - host: "${UP_HOST:-127.0.0.1}:${UP_PORT:-8080}"
"""


def _route(env: dict) -> tuple[str, str]:
    cfg = load_config_text(DOC, env=env)
    r = cfg.binds[0].listeners[0].routes[0]
    return r.name, r.backends[0].host


def test_the_default_applies_when_the_variable_is_unset():
    assert _route({}) == ("fallback", "127.0.0.1:8080")


def test_a_set_variable_wins_and_an_empty_one_takes_the_default():
    assert _route({"ROUTE": "api", "UP_PORT": "9000", "UP_HOST": ""}) == ("api", "127.0.0.1:9000")


def test_a_default_may_name_another_variable():
    doc = DOC.replace("${ROUTE:-fallback}", "${ROUTE:-$OTHER-route}")
    cfg = load_config_text(doc, env={"OTHER": "x"})
    assert cfg.binds[0].listeners[0].routes[0].name == "x-route"


def test_without_a_default_an_unset_variable_is_still_an_error():
    with pytest.raises(ConfigError, match="environment variable NOPE is not set"):
        load_config_text(DOC.replace("${ROUTE:-fallback}", "${NOPE}"), env={})
