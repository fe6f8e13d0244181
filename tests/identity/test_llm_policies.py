"""The ``llm:`` shorthand's ``policies`` authenticate and authorize like a route's:
``apiKey`` (and the other authentication policies) and ``authorization`` run before the
model is called."""

from __future__ import annotations

import httpx

from tests.support.harness import closed_port, free_port, gateway_config


def test_llm_shorthand_enforces_authentication_and_authorization(harness):
    port = free_port()
    cfg = gateway_config([])
    cfg["llm"] = {
        "port": port,
        "models": [
            {
                "name": "m",
                "provider": "openAI",
                "params": {"baseUrl": f"http://127.0.0.1:{closed_port()}/v1", "apiKey": "sk-upstream"},
            }
        ],
        "policies": {
            "apiKey": {
                "mode": "strict",
                "keys": [
                    {"key": "k-team-a", "metadata": {"team": "a"}},
                    {"key": "k-team-b", "metadata": {"team": "b"}},
                ],
            },
            "authorization": {"deny": ['apiKey.team == "b"']},
        },
    }
    harness.gateway(cfg)
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}

    def status(key: str | None) -> int:
        headers = {"authorization": f"Bearer {key}"} if key else {}
        return httpx.post(url, json=body, headers=headers, timeout=10).status_code

    assert status(None) == 401
    assert status("wrong") == 401
    assert status("k-team-b") == 403
    # authenticated and authorized: on to the provider, which is not listening
    assert status("k-team-a") not in (401, 403)
