"""AgentgatewayModel (refused with the reason, on each parent it cannot be served on; what is
served is in test_agentgateway_model.py) and the AgentgatewayParameters
fields beyond image/env/resources/overlays: ``shutdown`` translated into the proxy's drain
settings and the pod's grace period; ``workload``, ``istio``, ``spiffe``, ``modelCatalog``
and ``daemonSet`` refused."""

from __future__ import annotations

import pytest

from agentgw.config import load_config_text
from agentgw.kube.cli import dump_yaml
from agentgw.kube.provision import proxy_objects
from agentgw.kube.translate import translate

GW = "gateway.networking.k8s.io"
AG = "agentgateway.dev"


def _gateway(params: dict | None = None) -> list[dict]:
    gw = {
        "apiVersion": f"{GW}/v1",
        "kind": "Gateway",
        "metadata": {"name": "gw", "namespace": "ns"},
        "spec": {"gatewayClassName": "x", "listeners": [{"name": "l", "port": 80, "protocol": "HTTP"}]},
    }
    if params is None:
        return [gw]
    gw["spec"]["infrastructure"] = {"parametersRef": {"group": AG, "kind": "AgentgatewayParameters", "name": "p"}}
    return [
        gw,
        {
            "apiVersion": f"{AG}/v1alpha1",
            "kind": "AgentgatewayParameters",
            "metadata": {"name": "p", "namespace": "ns"},
            "spec": params,
        },
    ]


def _model(name: str, spec: dict) -> dict:
    return {
        "apiVersion": f"{AG}/v1alpha1",
        "kind": "AgentgatewayModel",
        "metadata": {"name": name, "namespace": "ns"},
        "spec": {"parentRefs": [{"name": "gw", "sectionName": "l"}], **spec},
    }


def test_models_are_refused_on_each_parent_with_the_reason():
    # (the listener does not list AgentgatewayModel in allowedRoutes.kinds: models are opt-in)
    res = translate(
        _gateway()
        + [
            _model("m", {"provider": "OpenAI", "match": {"model": "gpt-*"}}),
            _model(
                "v",
                {
                    "virtualModel": {"failover": {"targets": [{"modelRef": {"name": "m"}, "priority": 0}]}},
                    "policies": {"headers": {"request": {"set": [{"name": "a", "value": "b"}]}}},
                },
            ),
            _model("w", {"provider": "Ollama"}),
            _model("x", {"match": {"model": "a*b"}, "provider": "OpenAI"}),
        ],
        offline=True,
    )
    st = res.status[(AG, "AgentgatewayModel", "ns", "m")]
    assert st["parents"] == [
        {
            "parentRef": {"group": GW, "kind": "Gateway", "namespace": "ns", "name": "gw", "sectionName": "l"},
            "controllerName": "agentgw.dev/controller",
            "conditions": st["parents"][0]["conditions"],
        }
    ]
    c = st["parents"][0]["conditions"][0]
    assert (c["type"], c["status"], c["reason"], c["message"]) == (
        "Accepted",
        "False",
        "NotAllowedByListeners",
        "listener l does not list agentgateway.dev/AgentgatewayModel in allowedRoutes.kinds",
    )

    def why(n: str) -> str:
        return res.status[(AG, "AgentgatewayModel", "ns", n)]["parents"][0]["conditions"][0]["message"]

    assert "policies cannot be used with virtualModel" in why("v")
    assert "ollama requires baseURL" in why("w")
    assert "model wildcards must be '*', a suffix like 'gpt-*', or a prefix like '*-latest'" in why("x")
    # the Gateway itself is unaffected
    assert ("ns", "gw") in res.gateways


def test_parameters_shutdown_sets_the_drain_and_the_grace_period():
    res = translate(_gateway({"shutdown": {"min": 5, "max": 35}, "workload": {"kind": "Deployment"}}), offline=True)
    assert not res.errors, res.errors
    g = res.gateways[("ns", "gw")]
    assert g.config["config"]["connectionMinTerminationDeadline"] == "5s"
    assert g.config["config"]["connectionTerminationDeadline"] == "30s"
    load_config_text(dump_yaml(g.config))
    dep = next(o for o in proxy_objects(g) if o["kind"] == "Deployment")
    assert dep["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 35
    res = translate(_gateway({"shutdown": {"min": 50, "max": 35}}), offline=True)
    assert any("The 'min' value must be less than or equal to the 'max' value." in e for e in res.errors)


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"workload": {"kind": "DaemonSet"}}, "spec.workload.kind: DaemonSet is not supported by agentgw"),
        ({"daemonSet": {"spec": {}}}, "spec.daemonSet: not supported by agentgw"),
        ({"istio": {"enabled": True}}, "spec.istio: not supported by agentgw"),
        ({"spiffe": {"enabled": True}}, "spec.spiffe: not supported by agentgw"),
        ({"modelCatalog": {"sources": []}}, "spec.modelCatalog: not supported by agentgw"),
    ],
)
def test_parameters_agentgw_cannot_act_on_are_refused(params, needle):
    res = translate(_gateway(params), offline=True)
    st = res.status[(AG, "AgentgatewayParameters", "ns", "p")]["conditions"][0]
    assert st["status"] == "False" and needle in st["message"], st
    # and the Gateway that uses them is not applied with them silently dropped
    assert ("ns", "gw") not in res.gateways
