"""Kubernetes support: Gateway API + agentgateway CRDs in, agentgw config out.

* `translate` — the pure translator: a set of objects (dicts) → one agentgw config per
  Gateway, the status each object should carry, and errors.
* `provision` — the proxy Deployment / Service / ServiceAccount / config Secret of a Gateway.
* `client`, `controller` — a small Kubernetes API client and the reconcile loop.
* `manifests` — reading YAML manifests from files and directories (offline use).
"""

CONTROLLER_NAME = "agentgw.dev/controller"
