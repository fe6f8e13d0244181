"""The real reconcile loop against the stand-in API server (tests/kube/fakeapi.py).

There is no cluster on the machines these tests run on; the stand-in implements the API
semantics the controller relies on (list/watch with resourceVersion, 410 on expired
watches, 409 on stale writes, status subresources, owner-reference garbage collection).
"""

from __future__ import annotations

import asyncio
import base64
import os

import pytest
import yaml

from agentgw.kube.client import ApiError, Resource
from agentgw.kube.controller import Controller
from agentgw.kube.manifests import load_manifests
from agentgw.kube.translate import translate
from tests.kube.waiting import eventually

from .fakeapi import FakeApi

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
GW = "gateway.networking.k8s.io"
pytestmark = pytest.mark.timeout(60)


def _group(obj):
    av = obj["apiVersion"]
    return av.split("/")[0] if "/" in av else ""


def _cond(status, type_):
    return next(c for c in status["conditions"] if c["type"] == type_)


class Env:
    def __init__(self, api, client, ctl, task):
        self.api, self.client, self.ctl, self.task = api, client, ctl, task


async def _start(objs, tmp_path, gatewayclass="enterprise-agentgateway"):
    api = FakeApi()
    await api.start()
    await api.put_object(
        GW,
        {
            "apiVersion": f"{GW}/v1",
            "kind": "GatewayClass",
            "metadata": {"name": gatewayclass},
            "spec": {"controllerName": "agentgw.dev/controller"},
        },
    )
    for o in objs:
        await api.put_object(_group(o), o)
    client = await api.connect(tmp_path)
    ctl = Controller(client, image="registry.example/agentgw:test", debounce=0.05)
    task = asyncio.get_running_loop().create_task(ctl.run())
    return Env(api, client, ctl, task)


async def _stop(env):
    env.task.cancel()
    await asyncio.gather(env.task, return_exceptions=True)
    await env.client.close()
    await env.api.stop()


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 50))


def test_seed000_end_to_end_status_provisioning_irsa_and_config_updates(tmp_path):
    async def main():
        env = await _start(load_manifests(os.path.join(FIXTURES, "seed000_agentcore")), tmp_path)
        api = env.api
        try:
            # GatewayClass Accepted; Gateway Accepted but not Programmed until a proxy pod is ready
            gc = await eventually(
                lambda: api.get("GatewayClass", "", "enterprise-agentgateway").get("status"), what="GatewayClass status"
            )
            assert _cond(gc, "Accepted")["status"] == "True"
            gw = await eventually(
                lambda: api.get("Gateway", "agentgateway-system", "agentgateway").get("status"), what="Gateway status"
            )
            assert _cond(gw, "Accepted")["status"] == "True"
            assert _cond(gw, "Programmed")["reason"] == "Pending"
            assert gw["listeners"][0]["attachedRoutes"] == 1

            # proxy objects named after the Gateway, owned by it
            sa = api.get("ServiceAccount", "agentgateway-system", "agentgateway")
            dep = api.get("Deployment", "agentgateway-system", "agentgateway")
            svc = api.get("Service", "agentgateway-system", "agentgateway")
            sec = api.get("Secret", "agentgateway-system", "agentgateway-agentgw-config")
            uid = api.get("Gateway", "agentgateway-system", "agentgateway")["metadata"]["uid"]
            for o in (sa, dep, svc, sec):
                assert o["metadata"]["labels"]["gateway.networking.k8s.io/gateway-name"] == "agentgateway"
                assert o["metadata"]["ownerReferences"][0]["uid"] == uid
            pod = dep["spec"]["template"]
            assert pod["metadata"]["labels"]["gateway.networking.k8s.io/gateway-name"] == "agentgateway"
            assert pod["spec"]["serviceAccountName"] == "agentgateway"
            assert pod["spec"]["containers"][0]["image"] == "registry.example/agentgw:test"
            assert svc["spec"]["ports"] == [{"name": "http", "port": 8080, "targetPort": 8080, "protocol": "TCP"}]
            cfg = yaml.safe_load(base64.b64decode(sec["data"]["config.yaml"]))
            want = (
                translate(load_manifests(os.path.join(FIXTURES, "seed000_agentcore")), offline=True)
                .gateways[("agentgateway-system", "agentgateway")]
                .config
            )
            assert cfg == want

            # the seed's checks
            be = await eventually(
                lambda: api.get("AgentgatewayBackend", "agentgateway-system", "agentcore-backend")["status"],
                what="backend status",
            )
            assert be["conditions"][0]["reason"] == "Accepted"
            # statuses are written one object after another: wait for the route's
            rt = await eventually(
                lambda: api.get("HTTPRoute", "agentgateway-system", "agentcore")["status"], what="route status"
            )
            assert [c["reason"] for c in rt["parents"][0]["conditions"] if c["type"] == "ResolvedRefs"] == [
                "ResolvedRefs"
            ]
            assert rt["parents"][0]["controllerName"] == "agentgw.dev/controller"
            assert all(c.get("lastTransitionTime") for c in rt["parents"][0]["conditions"])

            # the deployment controller reports a ready pod; the cloud gives the Service an address
            await api.set_status(
                "Deployment", "agentgateway-system", "agentgateway", {"availableReplicas": 1, "readyReplicas": 1}
            )
            await api.set_status(
                "Service",
                "agentgateway-system",
                "agentgateway",
                {"loadBalancer": {"ingress": [{"hostname": "gw.elb.example.com"}]}},
            )
            gw = await eventually(
                lambda: (
                    (s := api.get("Gateway", "agentgateway-system", "agentgateway")["status"])
                    and _cond(s, "Programmed")["status"] == "True"
                    and s
                ),
                what="Programmed=True",
            )
            assert _cond(gw, "Programmed")["reason"] == "Programmed"
            await eventually(
                lambda: (
                    api.get("Gateway", "agentgateway-system", "agentgateway")["status"].get("addresses")
                    == [{"type": "Hostname", "value": "gw.elb.example.com"}]
                ),
                what="addresses",
            )

            # IRSA step: annotate the ServiceAccount; the controller must keep the annotation
            await env.client.merge_patch(
                Resource("", "v1", "serviceaccounts", "ServiceAccount"),
                "agentgateway-system",
                "agentgateway",
                {
                    "metadata": {
                        "annotations": {
                            "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/agentgateway-agentcore-irsa"
                        }
                    }
                },
            )
            dep_gen = api.get("Deployment", "agentgateway-system", "agentgateway")["metadata"]["generation"]

            # a route change: new config in the Secret, no pod restart (Deployment spec untouched)
            route = api.get("HTTPRoute", "agentgateway-system", "agentcore")
            patch = {
                "spec": {
                    "rules": [
                        {
                            "matches": [{"path": {"type": "PathPrefix", "value": "/tasks"}}],
                            "backendRefs": route["spec"]["rules"][0]["backendRefs"],
                        }
                    ]
                }
            }
            await env.client.merge_patch(
                Resource(GW, "v1", "httproutes", "HTTPRoute"), "agentgateway-system", "agentcore", patch
            )

            def new_config():
                s = api.get("Secret", "agentgateway-system", "agentgateway-agentgw-config")
                c = yaml.safe_load(base64.b64decode(s["data"]["config.yaml"]))
                return c["binds"][0]["listeners"][0]["routes"][0].get("matches") == [{"path": {"pathPrefix": "/tasks"}}]

            await eventually(new_config, what="config update")
            assert api.get("Deployment", "agentgateway-system", "agentgateway")["metadata"]["generation"] == dep_gen
            sa = api.get("ServiceAccount", "agentgateway-system", "agentgateway")
            assert sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].endswith("agentgateway-agentcore-irsa")
            await eventually(
                lambda: (
                    (rt := api.get("HTTPRoute", "agentgateway-system", "agentcore"))["status"]["parents"][0][
                        "conditions"
                    ][0]["observedGeneration"]
                    == rt["metadata"]["generation"]
                    == 2
                ),
                what="route status for generation 2",
            )

            # deleting the Gateway garbage-collects its proxy
            await env.client.delete(Resource(GW, "v1", "gateways", "Gateway"), "agentgateway-system", "agentgateway")
            await eventually(lambda: api.get("Deployment", "agentgateway-system", "agentgateway") is None, what="GC")
            assert env.ctl.last_error is None
        finally:
            await _stop(env)

    run(main())


def test_status_conflict_is_retried_after_rereading(tmp_path):
    async def main():
        objs = load_manifests(os.path.join(FIXTURES, "seed003_ack_a2a"))
        api = FakeApi()
        # the first status write to the HTTPRoute loses a race with another writer
        api.conflict_next.add((GW, "httproutes", "default", "route-for-a2a-backend"))
        await api.start()
        await api.put_object(
            GW,
            {
                "apiVersion": f"{GW}/v1",
                "kind": "GatewayClass",
                "metadata": {"name": "ack-agent-gateway"},
                "spec": {"controllerName": "agentgw.dev/controller"},
            },
        )
        for o in objs:
            await api.put_object(_group(o), o)
        client = await api.connect(tmp_path)
        ctl = Controller(client, debounce=0.05)
        task = asyncio.get_running_loop().create_task(ctl.run())
        env = Env(api, client, ctl, task)
        try:
            st = await eventually(
                lambda: api.get("HTTPRoute", "default", "route-for-a2a-backend").get("status"), what="route status"
            )
            assert _cond(st["parents"][0], "Accepted")["status"] == "True"
            assert ctl.conflicts >= 1
            assert any(
                m == "PUT" and p.endswith("/route-for-a2a-backend/status") and code == 409
                for m, p, code in api.requests
            )
            # the other writer's change survived: status was written on top of the re-read object
            assert api.get("HTTPRoute", "default", "route-for-a2a-backend")["metadata"]["annotations"]["test/raced"]
            pol = await eventually(
                lambda: api.get("TrafficPolicy", "default", "test-a2a-apikey-auth").get("status"), what="policy status"
            )
            assert _cond(pol, "Accepted")["status"] == "True"
            assert pol["ancestors"][0]["ancestorRef"]["name"] == "route-for-a2a-backend"
        finally:
            await _stop(env)

    run(main())


def test_expired_watch_relists_and_keeps_converging(tmp_path):
    async def main():
        env = await _start(load_manifests(os.path.join(FIXTURES, "seed000_agentcore")), tmp_path)
        api = env.api
        try:
            await eventually(
                lambda: api.get("Gateway", "agentgateway-system", "agentgateway").get("status"), what="status"
            )
            api.compact()
            await api.drop_watches()
            # a change after compaction: watches get 410, list again, and still see it
            await env.client.merge_patch(
                Resource("agentgateway.dev", "v1alpha1", "agentgatewaybackends", "AgentgatewayBackend"),
                "agentgateway-system",
                "agentcore-backend",
                {"spec": {"aws": {"agentCore": {"qualifier": "prod"}}}},
            )

            def has_qualifier():
                s = api.get("Secret", "agentgateway-system", "agentgateway-agentgw-config")
                c = yaml.safe_load(base64.b64decode(s["data"]["config.yaml"]))
                return (
                    c["binds"][0]["listeners"][0]["routes"][0]["backends"][0]["aws"]["agentCore"].get("qualifier")
                    == "prod"
                )

            await eventually(has_qualifier, what="qualifier in config")
            assert env.ctl.relists >= 1
        finally:
            await _stop(env)

    run(main())


def test_broken_reference_reported_then_fixed_by_reference_grant(tmp_path):
    async def main():
        objs = [o for o in load_manifests(os.path.join(FIXTURES, "seed002_flux")) if o["kind"] != "ReferenceGrant"]
        env = await _start(objs, tmp_path, gatewayclass="agentgateway")
        api = env.api
        try:
            st = await eventually(
                lambda: api.get("HTTPRoute", "agentgateway-system", "kagent-a2a").get("status"), what="route status"
            )
            rr = _cond(st["parents"][0], "ResolvedRefs")
            assert (rr["status"], rr["reason"]) == ("False", "RefNotPermitted")
            grant = next(
                o for o in load_manifests(os.path.join(FIXTURES, "seed002_flux")) if o["kind"] == "ReferenceGrant"
            )
            await env.client.create(Resource(GW, "v1beta1", "referencegrants", "ReferenceGrant"), grant)
            await eventually(
                lambda: (
                    _cond(
                        api.get("HTTPRoute", "agentgateway-system", "kagent-a2a")["status"]["parents"][0],
                        "ResolvedRefs",
                    )["status"]
                    == "True"
                ),
                what="ResolvedRefs=True",
            )
            # parameters applied: HPA + PDB, replicas left to the HPA
            hpa = await eventually(
                lambda: api.get("HorizontalPodAutoscaler", "agentgateway-system", "agentgateway-proxy"), what="HPA"
            )
            assert hpa["spec"]["maxReplicas"] == 3
            assert (
                api.get("PodDisruptionBudget", "agentgateway-system", "agentgateway-proxy")["spec"]["minAvailable"] == 1
            )
            dep = api.get("Deployment", "agentgateway-system", "agentgateway-proxy")
            assert "replicas" not in dep["spec"]
            assert dep["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"] == {
                "cpu": "500m",
                "memory": "512Mi",
            }
        finally:
            await _stop(env)

    run(main())


def test_stand_in_api_semantics(tmp_path):
    """The stand-in itself: stale PUT → 409, /status only touches status, watch from a version."""
    LISTENERS = [{"name": "http", "port": 80, "protocol": "HTTP"}]

    async def main():
        api = FakeApi()
        await api.start()
        client = await api.connect(tmp_path)
        res = Resource(GW, "v1", "gateways", "Gateway")
        try:
            created = await client.create(
                res,
                {
                    "apiVersion": f"{GW}/v1",
                    "kind": "Gateway",
                    "metadata": {"name": "g", "namespace": "n"},
                    "spec": {"gatewayClassName": "x", "listeners": LISTENERS},
                    "status": {"x": 1},
                },
            )
            assert "status" not in created and created["metadata"]["generation"] == 1
            items, rv = await client.list(res, "n")
            assert items[0]["kind"] == "Gateway" and rv == created["metadata"]["resourceVersion"]
            stale = dict(created, spec={"gatewayClassName": "y", "listeners": LISTENERS})
            upd = await client.replace(res, stale)
            assert upd["metadata"]["generation"] == 2
            with pytest.raises(ApiError) as ei:
                await client.replace(res, stale)  # its resourceVersion is now stale
            assert ei.value.status == 409
            st = await client.replace_status(
                res, {**upd, "spec": {"gatewayClassName": "ignored"}, "status": {"conditions": []}}
            )
            assert (
                st["spec"]["gatewayClassName"] == "y"
                and st["status"] == {"conditions": []}
                and st["metadata"]["generation"] == 2
            )
            seen = []
            async for typ, obj in client.watch(res, rv, "n", timeout_seconds=1):
                seen.append((typ, obj["metadata"]["resourceVersion"]))
            assert [t for t, _ in seen] == ["MODIFIED", "MODIFIED"]
            api.compact()
            with pytest.raises(Exception) as ei2:
                async for _ in client.watch(res, rv, "n", timeout_seconds=1):
                    pass
            assert type(ei2.value).__name__ == "WatchExpired"
        finally:
            await client.close()
            await api.stop()

    run(main())


def test_seed004_three_listeners_tracing_policy_and_parameters(tmp_path):
    async def main():
        objs = load_manifests(os.path.join(FIXTURES, "seed004_three_listeners"))
        env = await _start([o for o in objs if o["kind"] != "ReferenceGrant"], tmp_path, gatewayclass="agentgateway")
        api = env.api
        try:
            # without the ReferenceGrant the tracing policy is refused, traffic still configured
            pol = await eventually(
                lambda: api.get("AgentgatewayPolicy", "agentgateway-system", "otel-tracing").get("status"),
                what="policy status",
            )
            assert (_cond(pol, "Accepted")["status"], _cond(pol, "Accepted")["reason"]) == ("False", "RefNotPermitted")
            gw = await eventually(
                lambda: api.get("Gateway", "agentgateway-system", "agentgateway-proxy").get("status"),
                what="gateway status",
            )
            assert [(ls["name"], ls["attachedRoutes"]) for ls in gw["listeners"]] == [
                ("a2a", 1),
                ("mcp", 1),
                ("llm", 1),
            ]
            svc = api.get("Service", "agentgateway-system", "agentgateway-proxy")
            assert svc["spec"]["type"] == "ClusterIP"
            assert [p["port"] for p in svc["spec"]["ports"]] == [8080, 9090, 9080]
            params = await eventually(
                lambda: api.get("AgentgatewayParameters", "agentgateway-system", "agentgateway-proxy-params")["status"],
                what="parameters status",
            )
            assert _cond(params, "Accepted")["status"] == "True"
            grant = next(o for o in objs if o["kind"] == "ReferenceGrant")
            await env.client.create(Resource(GW, "v1beta1", "referencegrants", "ReferenceGrant"), grant)
            await eventually(
                lambda: (
                    _cond(api.get("AgentgatewayPolicy", "agentgateway-system", "otel-tracing")["status"], "Accepted")[
                        "status"
                    ]
                    == "True"
                ),
                what="policy accepted",
            )

            def traced():
                s = api.get("Secret", "agentgateway-system", "agentgateway-proxy-agentgw-config")
                return (
                    yaml.safe_load(base64.b64decode(s["data"]["config.yaml"]))["config"]
                    .get("tracing", {})
                    .get("otlpEndpoint")
                )

            assert (
                await eventually(traced, what="tracing in config")
                == "http://opentelemetry-collector.opentelemetry.svc.cluster.local:4317"
            )
        finally:
            await _stop(env)

    run(main())
