"""agentgateway's llm-standalone-epp example: a real agentgw process in front of two model
server stand-ins, routed per request by an endpoint picker that speaks Envoy's ext_proc
protocol as the Gateway API inference extension's EPP does (full-duplex streamed body,
``x-gateway-destination-endpoint``)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import yaml

from tests.support.ext_proc import EndpointPicker
from tests.support.harness import closed_port, free_port

COMPAT = Path(__file__).parents[1] / "compat" / "agentgateway"


@pytest.fixture
def pods(harness):
    return harness.upstream("pod-a"), harness.upstream("pod-b")


def _example(picker: str) -> dict:
    cfg = yaml.safe_load((COMPAT / "examples/llm-standalone-epp/config.yaml").read_text())
    lst = cfg["binds"][0]["listeners"][0]
    ir = lst["routes"][0]["backends"][0]["policies"]["inferenceRouting"]
    assert ir == {"endpointPicker": {"host": "127.0.0.1:9002"}, "destinationMode": "passthrough"}
    ir["endpointPicker"]["host"] = picker  # the example's port may be taken here
    cfg["binds"][0]["port"] = free_port()
    cfg["config"] = {f"{k}Addr": f"127.0.0.1:{free_port()}" for k in ("admin", "stats", "readiness")}
    return cfg


def _chat(port: int, model: str, **kw):
    return httpx.post(
        f"http://127.0.0.1:{port}/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
        timeout=20,
        **kw,
    )


def test_the_picker_chooses_the_endpoint_per_request(harness, pods):
    a, b = pods
    epp = EndpointPicker({"llama": a.host, "*": b.host})
    try:
        cfg = _example(epp.address)
        harness.gateway(cfg)
        port = cfg["binds"][0]["port"]
        for model, pod in (("llama", "pod-a"), ("mistral", "pod-b"), ("llama", "pod-a")):
            r = _chat(port, model)
            assert r.status_code == 200, r.text
            assert r.headers["x-upstream-name"] == pod
            echo = r.json()
            assert echo["path"] == "/v1/chat/completions"
            assert '"model":"' + model + '"' in echo["body"].replace(" ", "")  # the body as the picker passed it
        seen = [e["phase"] for e in epp.seen]
        assert seen[:4] == ["request_headers", "request_body", "response_headers", "response_body"]
        assert epp.seen[0]["protocol"] == (4, 4)  # full-duplex streamed, as the EPP expects
        assert epp.seen[0]["end_of_stream"] is False and epp.seen[1]["end_of_stream"] is True
    finally:
        epp.stop()


def test_picker_down_fails_closed(harness):
    cfg = _example(f"127.0.0.1:{closed_port()}")
    harness.gateway(cfg)
    r = _chat(cfg["binds"][0]["port"], "llama")
    assert r.status_code == 503 and r.json()["error"]["type"] == "endpoint_picker_error"


def test_validated_mode_accepts_only_the_services_addresses(harness, pods):
    a, b = pods
    epp = EndpointPicker({"llama": a.host, "*": b.host})
    try:
        cfg = _example(epp.address)
        a_port = int(a.host.rsplit(":", 1)[1])
        cfg["services"][0]["vips"] = ["127.0.0.1"]
        cfg["services"][0]["ports"] = {8000: a_port}
        ir = cfg["binds"][0]["listeners"][0]["routes"][0]["backends"][0]["policies"]["inferenceRouting"]
        del ir["destinationMode"]  # validated, the default
        harness.gateway(cfg)
        port = cfg["binds"][0]["port"]
        r = _chat(port, "llama")
        assert r.status_code == 200 and r.headers["x-upstream-name"] == "pod-a"
        r = _chat(port, "mistral")  # pod-b is not an address of the service
        assert r.status_code == 503 and "not an endpoint of the service" in r.json()["error"]["message"]
    finally:
        epp.stop()


def test_static_service_without_picker_uses_its_vips(harness, pods):
    a, _ = pods
    a_port = int(a.host.rsplit(":", 1)[1])
    cfg = _example("127.0.0.1:1")
    cfg["services"][0]["vips"] = ["127.0.0.1"]
    cfg["services"][0]["ports"] = {8000: a_port}
    del cfg["binds"][0]["listeners"][0]["routes"][0]["backends"][0]["policies"]
    harness.gateway(cfg)
    r = _chat(cfg["binds"][0]["port"], "any")
    assert r.status_code == 200 and r.headers["x-upstream-name"] == "pod-a"
    # the example's own service (no vips) and no picker: no endpoint to send to
    cfg2 = _example("127.0.0.1:1")
    del cfg2["binds"][0]["listeners"][0]["routes"][0]["backends"][0]["policies"]
    harness.gateway(cfg2)
    r = _chat(cfg2["binds"][0]["port"], "any")
    assert r.status_code == 503 and r.json()["error"]["type"] == "no_healthy_backend"
