"""``extProc``: a real agentgw process, a real gRPC external processor (Envoy's
ext_proc protocol) and a real upstream: header and body mutations in every body mode,
immediate responses, path and host rewrites, attributes and metadata, mode overrides,
and what happens when the processor fails."""

from __future__ import annotations

import httpx
import pytest

from tests.support.ext_proc import Processor
from tests.support.harness import closed_port, echo_header, gateway_config, route


@pytest.fixture(scope="module")
def processor():
    p = Processor()
    yield p
    p.stop()


def _gw(harness, processor, **ext):
    up = harness.upstream("extproc-up")
    xp = {"host": processor.address, **ext}
    cfg = gateway_config([route("r", [up.host], policies={"extProc": xp})])
    return harness.gateway(cfg)


def _post(gw, test: str, body: bytes = b'{"q":"hello"}', path: str = "/echo/x", **headers):
    return httpx.post(
        gw.url + path, content=body, headers={"x-test": test, "content-type": "application/json", **headers}, timeout=20
    )


def test_headers_both_ways(harness, processor):
    gw = _gw(harness, processor)
    n = len(processor.seen)
    r = _post(gw, "headers", **{"x-remove-me": "1", "x-added": "one"})
    assert r.status_code == 200, r.text
    echo = r.json()
    assert echo_header(echo, "x-processed") == ["yes"]
    assert echo_header(echo, "x-remove-me") == []
    assert echo_header(echo, "x-added") == ["one", "two"]  # APPEND_IF_EXISTS_OR_ADD
    assert r.headers["x-resp-processed"] == "yes"
    seen = processor.seen[n:]
    assert [e["phase"] for e in seen] == ["request_headers", "request_body", "response_headers", "response_body"]
    h = seen[0]["headers"]
    assert h[":method"] == "POST" and h[":path"] == "/echo/x" and h[":scheme"] == "http" and h["x-test"] == "headers"
    assert seen[0]["end_of_stream"] is False and seen[0]["protocol"] == (4, 4)  # fullDuplexStreamed by default
    assert seen[1]["body"] == b'{"q":"hello"}' and seen[1]["end_of_stream"] is True
    assert seen[2]["headers"][":status"] == "200"


@pytest.mark.parametrize("mode", ["buffered", "fullDuplexStreamed", "bufferedPartial"])
def test_body_mutations(harness, processor, mode):
    gw = _gw(harness, processor, processingOptions={"requestBodyMode": mode, "responseBodyMode": mode})
    r = _post(gw, "upper", b'{"q":"make me loud"}')
    assert r.status_code == 200, r.text
    # the response body the processor saw is the upstream's echo of the changed request
    assert r.content.startswith(b"[processed {") and r.content.endswith(b"}]")
    echo = __import__("json").loads(r.content[len(b"[processed ") : -1])
    assert echo["body"] == '{"Q":"MAKE ME LOUD"}'
    assert echo_header(echo, "content-length") == [str(len(b'{"Q":"MAKE ME LOUD"}'))]
    assert int(r.headers["content-length"]) == len(r.content)


def test_immediate_response(harness, processor):
    gw = _gw(harness, processor)
    r = _post(gw, "deny")
    assert r.status_code == 403, r.text
    assert r.json() == {"error": "denied by the processor"} and r.headers["x-denied"] == "1"


def test_path_and_authority_rewrite(harness, processor):
    gw = _gw(
        harness,
        processor,
        processingOptions={"requestBodyMode": "none", "responseHeaderMode": "skip", "responseBodyMode": "none"},
    )
    n = len(processor.seen)
    r = _post(gw, "path")
    assert r.status_code == 200
    echo = r.json()
    assert echo["path"] == "/rewritten" and echo["query"] == "by=processor"
    assert echo_header(echo, "host") == ["rewritten.example"]
    assert [e["phase"] for e in processor.seen[n:]] == ["request_headers"]  # nothing else was asked for


def test_no_body_and_skipped_headers(harness, processor):
    gw = _gw(harness, processor, processingOptions={"requestHeaderMode": "skip"})
    n = len(processor.seen)
    r = httpx.get(gw.url + "/echo/get", timeout=10)
    assert r.status_code == 200
    # no request headers (skipped) and no request body (there is none): the response only
    assert [e["phase"] for e in processor.seen[n:]] == ["response_headers", "response_body"]


def test_attributes_and_metadata(harness, processor):
    gw = _gw(
        harness,
        processor,
        requestAttributes={"path": "request.path", "method": "request.method"},
        responseAttributes={"code": "response.code"},
        metadataContext={"tenant.ns": {"tenant": 'request.headers["x-tenant"]'}},
    )
    n = len(processor.seen)
    r = _post(gw, "none", **{"x-tenant": "acme"})
    assert r.status_code == 200
    seen = processor.seen[n:]
    assert seen[0]["attributes"] == {"envoy.filters.http.ext_proc": {"path": "/echo/x", "method": "POST"}}
    assert seen[0]["metadata"] == {"tenant.ns": {"tenant": "acme"}}
    resp = next(e for e in seen if e["phase"] == "response_headers")
    assert resp["attributes"] == {"envoy.filters.http.ext_proc": {"code": 200}}


def test_mode_override(harness, processor):
    for allow, phases in (
        (True, ["request_headers", "request_body"]),
        (False, ["request_headers", "request_body", "response_headers", "response_body"]),
    ):
        gw = _gw(harness, processor, processingOptions={"allowModeOverride": allow})
        n = len(processor.seen)
        assert _post(gw, "skip-response").status_code == 200
        assert processor.phases(n) == phases, allow


def test_failure_modes(harness, processor):
    up = harness.upstream("extproc-fail")
    dead = f"127.0.0.1:{closed_port()}"
    cfg = gateway_config(
        [
            route("closed", [up.host], prefix="/closed", policies={"extProc": {"host": dead}}),
            route("open", [up.host], prefix="/open", policies={"extProc": {"host": dead, "failureMode": "failOpen"}}),
        ]
    )
    gw = harness.gateway(cfg)
    r = httpx.get(gw.url + "/closed/x", timeout=10)
    assert r.status_code == 503 and r.json()["error"]["type"] == "ext_proc_error"
    r = httpx.get(gw.url + "/open/x", timeout=10)
    assert r.status_code == 200 and r.json()["path"] == "/open/x"
