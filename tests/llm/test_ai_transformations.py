"""``ai.transformations`` on a route and on its ``ai`` backend: request-body fields from
CEL (``llmRequest``, ``request``, ``jwt``...), the backend's fields winning, as the OpenAI
fake receives them."""

from __future__ import annotations

import httpx

from tests.llm import fakes as F
from tests.support.harness import gateway_config


def test_route_and_backend_transformations(harness, fakes):
    routes = [
        {
            "name": "tx",
            "policies": {
                "backendAuth": {"key": F.OPENAI_KEY},
                "ai": {
                    "transformations": {
                        "user": 'request.headers["x-user"]',
                        "max_tokens": "llmRequest.max_tokens * 2",
                        "model": '"from-route"',
                    }
                },
            },
            "backends": [
                {
                    "ai": {
                        "name": "oa",
                        "provider": {"openAI": {}},
                        "hostOverride": f"127.0.0.1:{fakes.port}",
                    },
                    "policies": {"ai": {"transformations": {"model": 'llmRequest.model + "-b"'}}},
                }
            ],
        }
    ]
    gw = harness.gateway(gateway_config(routes))
    fakes.reset()
    r = httpx.post(
        f"{gw.url}/v1/chat/completions",
        json={"model": "gpt-4o", "max_tokens": 21, "messages": [{"role": "user", "content": "hi"}]},
        headers={"x-user": "bob"},
        timeout=20,
    )
    assert r.status_code == 200, r.text
    body = fakes.last("openai")["body"]
    assert (body["model"], body["user"], body["max_tokens"]) == ("gpt-4o-b", "bob", 42)
    fakes.assert_valid()
