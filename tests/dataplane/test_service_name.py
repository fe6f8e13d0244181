"""Backends named as agentgateway writes them: a ``service`` as ``namespace/hostname``, a
top-level backend by its key ``/name``."""

from __future__ import annotations

import httpx

from tests.support.harness import gateway_config, route, run_cli


def test_a_service_named_namespace_slash_hostname_is_served(harness):
    up = harness.upstream("svc")
    backend = {"service": {"name": "default/127.0.0.1", "port": up.port}}
    gw = harness.gateway(gateway_config([route("svc", [backend])]))
    r = httpx.get(f"{gw.url}/hello", timeout=10)
    assert r.status_code == 200 and r.json()["upstream"] == "svc"


def test_a_service_name_without_a_namespace_is_refused(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "binds:\n- port: 3998\n  listeners:\n  - routes:\n    - backends:\n"
        "      - service: {name: my-model, port: 8000}\n"
    )
    r = run_cli("validate", "-f", str(cfg))
    assert r.returncode != 0
    out = r.stderr + r.stdout
    assert "backends[0].service.name" in out and "namespace/hostname" in out


def test_a_named_backend_is_referenced_by_its_key(harness):
    up = harness.upstream("named")
    cfg = gateway_config([route("r", [{"backend": "/shared"}])], backends=[{"name": "shared", "host": up.host}])
    gw = harness.gateway(cfg)
    r = httpx.get(f"{gw.url}/x", timeout=10)
    assert r.status_code == 200 and r.json()["upstream"] == "named"
