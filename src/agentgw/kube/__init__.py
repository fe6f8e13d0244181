"""Kubernetes support: Gateway API + agentgateway CRDs in, agentgw config out.

* `translate` — the pure translator: a set of objects (dicts) → one agentgw config per
  Gateway, the status each object should carry, and errors (`output`). It runs the steps
  of `store` (lookups, grants), `policy_attachment` (policy targets and merging; `policies`
  translates their sections), `backends`, `listeners`, `routes` and `gateways`; `objects`
  and `status` are the vocabulary they share.
* `schema` — validation of every translated object against its schema (`crds`, and
  `gatewayapi_schema`: the subset of the Gateway API agentgw implements), as the API
  server's strict field validation does.
* `check` — the proxy's own config validation and compiler on each translated config; what
  it refuses is refused on the object it comes from.
* `provision` — the proxy Deployment / Service / ServiceAccount / config Secret of a Gateway.
* `client`, `controller` — a small Kubernetes API client and the reconcile loop.
* `manifests` — reading YAML manifests from files and directories (offline use).
"""

CONTROLLER_NAME = "agentgw.dev/controller"
