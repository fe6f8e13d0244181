"""Signed agent cards (A2A 1.0) through the gateway, and cards on custom paths.

The agent is the a2a-sdk 1.x test agent signing its own card with the SDK's signer; the
cards the gateway serves are checked with the SDK's own verifier, as a client would."""

from __future__ import annotations

import asyncio
import sys

import httpx
import pytest
from a2a.client import ClientConfig, ClientFactory
from a2a.helpers.proto_helpers import new_text_message
from a2a.types import AgentCard, Role, SendMessageRequest
from a2a.utils.signing import InvalidSignaturesError, create_signature_verifier
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from google.protobuf.json_format import ParseDict

from tests.a2a.conftest import AgentProc
from tests.support.harness import gateway_config, route


def _key(tmp_path, name: str) -> tuple[str, str]:
    """A fresh P-256 key: (private PEM file, public PEM)."""
    k = ec.generate_private_key(ec.SECP256R1())
    f = tmp_path / f"{name}.pem"
    f.write_bytes(
        k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    pub = k.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return str(f), pub.decode()


def _verify(card: dict, public_pem: str) -> None:
    """The a2a-sdk's verifier, as a client checks a card."""
    create_signature_verifier(lambda kid, jku: public_pem, ["ES256"])(
        ParseDict(card, AgentCard(), ignore_unknown_fields=True)
    )


@pytest.fixture(scope="module")
def agent(tmp_path_factory):
    d = tmp_path_factory.mktemp("signed-agent")
    key, pub = _key(d, "agent")
    cmd = [
        sys.executable,
        "-m",
        "tests.a2a.agents.sdk_v1_agent",
        "--name",
        "signed",
        "--sign-key",
        key,
        "--card-path",
        "/cards/signed.json",
    ]
    p = AgentProc(d, "signed", cmd)
    yield p, pub
    p.stop()


def _gateway(harness, agent_host: str, a2a: dict):
    pol = {"a2a": a2a, "urlRewrite": {"path": {"prefix": "/"}}}
    return harness.gateway(gateway_config([route("signed", [agent_host], prefix="/signed", policies=pol)]))


def _card(gw, path="/signed/.well-known/agent-card.json") -> tuple[int, dict]:
    r = httpx.get(gw.url + path, timeout=10)
    return r.status_code, r.json()


def test_the_agents_own_card_verifies(agent):
    proc, pub = agent
    card = httpx.get(f"http://{proc.host}/.well-known/agent-card.json", timeout=10).json()
    assert len(card["signatures"]) == 1
    _verify(card, pub)


def test_a_rewritten_card_loses_the_signatures_it_no_longer_matches(harness, agent):
    proc, _pub = agent
    gw = _gateway(harness, proc.host, {})
    status, card = _card(gw)
    assert status == 200
    assert {i["url"] for i in card["supportedInterfaces"]} == {f"{gw.url}/signed/", f"{gw.url}/signed/rest"}
    assert "signatures" not in card  # the agent's, over its own addresses, would not verify


def test_the_gateway_verifies_the_agent_and_signs_what_it_serves(harness, agent, tmp_path):
    proc, agent_pub = agent
    gw_key, gw_pub = _key(tmp_path, "gateway")
    gw = _gateway(
        harness,
        proc.host,
        {"cardSigning": {"signingKey": {"file": gw_key}, "kid": "gateway-1", "agentKeys": agent_pub}},
    )
    status, card = _card(gw)
    assert status == 200
    assert str(proc.port) not in str(card["supportedInterfaces"])
    (_sig,) = card["signatures"]
    _verify(card, gw_pub)  # the gateway's signature over the addresses it serves
    with pytest.raises(InvalidSignaturesError):
        _verify(card, agent_pub)

    # and the card works: a client that discovered it sends a message through the gateway
    async def send():
        async with httpx.AsyncClient(timeout=20) as http:
            factory = ClientFactory(ClientConfig(httpx_client=http, streaming=False))
            client = await factory.create_from_url(f"{gw.url}/signed")
            try:
                msg = new_text_message("hi", role=Role.ROLE_USER)
                return [ev async for ev in client.send_message(SendMessageRequest(message=msg))]
            finally:
                await client.close()

    events = asyncio.run(asyncio.wait_for(send(), 30))
    assert events[-1].task.artifacts[0].parts[0].text.startswith("signed: hi")


def test_a_card_the_agent_keys_do_not_verify_is_refused(harness, agent, tmp_path):
    proc, _ = agent
    _other_key, other_pub = _key(tmp_path, "other")
    gw = _gateway(harness, proc.host, {"cardSigning": {"agentKeys": other_pub}})
    r = httpx.get(gw.url + "/signed/.well-known/agent-card.json", timeout=10)
    assert r.status_code == 502
    assert "signature" in r.text and "supportedInterfaces" not in r.text


def test_custom_card_paths_are_rewritten(harness, agent):
    proc, _ = agent
    gw = _gateway(harness, proc.host, {"cardPaths": ["/signed/cards/signed.json"]})
    status, card = _card(gw, "/signed/cards/signed.json")
    assert status == 200 and card["name"] == "signed"
    assert {i["url"] for i in card["supportedInterfaces"]} == {f"{gw.url}/signed/", f"{gw.url}/signed/rest"}
    assert "signatures" not in card


def test_card_signing_config_is_checked_at_load(tmp_path):
    from tests.support.harness import run_cli

    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "binds:\n- port: 3000\n  listeners:\n  - routes:\n    - policies:\n        a2a:\n          cardSigning: {signingKey: not-a-pem, kid: k}\n"
        "      backends: [{host: 127.0.0.1:9}]\n"
    )
    r = run_cli("validate", "-f", str(cfg))
    assert r.returncode != 0 and "policies.a2a.cardSigning.signingKey" in r.stdout + r.stderr
