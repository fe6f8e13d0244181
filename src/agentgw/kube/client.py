"""The controller's view of the Kubernetes API, on kubernetes_asyncio.

The library does the talking: it reads kubeconfig files and in-cluster service-account
credentials, sets up TLS (cluster CA, client certificates) and authentication (bearer tokens,
token files re-read as the kubelet rotates them, exec plugins such as ``aws eks get-token``),
sends the requests and streams watches. Objects stay plain dicts (custom resources have no
generated models), and every request asks for JSON.

Which cluster (`KubeClient.connect`), in the order client-go's controllers look:

1. an explicit kubeconfig (``agentgw controller --kubeconfig FILE``);
2. ``KUBECONFIG``: one or more files, ``:``-separated, merged as kubectl merges them;
3. in a pod: the service account (``KUBERNETES_SERVICE_HOST``/``KUBERNETES_SERVICE_PORT``,
   the token and CA under ``/var/run/secrets/kubernetes.io/serviceaccount``);
4. ``~/.kube/config``.

A kubeconfig's current context is used unless ``--context`` names another. When none of
these is there, `KubeConfigError` says where it looked.

The API as the controller uses it: lists are read in pages (``limit``/``continue``) and
return the ``resourceVersion`` to watch from; a watch streams ``{type, object}`` events and
ends with a 410 ``Expired`` error when that version is too old (`WatchExpired`: list
again); a continue token that outlived the server's history (410) restarts the list as one
request. ``PUT`` carries ``metadata.resourceVersion`` and fails with 409 when the object
changed meanwhile (then: read again and retry). Writes of objects (not of status) ask for
strict field validation (``fieldValidation=Strict``): a field the API server does not know
is an error, never silently dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import yaml
from kubernetes_asyncio import config as kube_config
from kubernetes_asyncio.client import ApiClient, Configuration
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.config.config_exception import ConfigException
from kubernetes_asyncio.watch import Watch

log = logging.getLogger("agentgw.controller")

SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
STRICT = ("fieldValidation", "Strict")
PAGE_SIZE = 500
REQUEST_TIMEOUT = 30.0
# every response is JSON read into dicts: the library's generic "object" type, no models
_OBJECT = {200: "object", 201: "object"}
_AUTH = ["BearerToken"]


class KubeConfigError(Exception):
    """No usable cluster credentials, or a kubeconfig that cannot be used as asked."""


class ApiError(Exception):
    def __init__(self, status: int, reason: str, message: str = ""):
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message

    @classmethod
    def from_exception(cls, exc: ApiException) -> ApiError:
        """The API server's ``Status`` (reason, message) when the body is one, else the raw body."""
        body = exc.body.decode("utf-8", "replace") if isinstance(exc.body, bytes) else (exc.body or "")
        try:
            status = json.loads(body) if body else {}
        except ValueError:
            status = {}
        if not isinstance(status, dict):
            status = {}
        code = int(exc.status or status.get("code") or 0)
        return cls(code, status.get("reason") or str(exc.reason or ""), status.get("message") or body)


class WatchExpired(Exception):
    """The watch's resourceVersion is too old (410 Gone): list again."""


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None = None, name: str | None = None, sub: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name:
            base += f"/{name}"
        if sub:
            base += f"/{sub}"
        return base


# -- credentials ---------------------------------------------------------------------------------
def _kubeconfig_files(value: str) -> list[str]:
    return [os.path.expanduser(p) for p in value.split(os.pathsep) if p]


def _contexts(files: list[str]) -> tuple[list[str], str | None]:
    """Context names and current-context of the merged files (the first file that sets it wins)."""
    names: list[str] = []
    current = None
    for f in files:
        try:
            with open(f, encoding="utf-8") as fh:
                doc = yaml.safe_load(fh) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise KubeConfigError(f"kubeconfig {f}: {exc}") from None
        if not isinstance(doc, dict):
            raise KubeConfigError(f"kubeconfig {f}: not a kubeconfig (a YAML mapping with clusters, contexts, users)")
        for c in doc.get("contexts") or []:
            if isinstance(c, dict) and c.get("name") and c["name"] not in names:
                names.append(c["name"])
        if current is None and doc.get("current-context"):
            current = doc["current-context"]
    return names, current


async def _from_kubeconfig(value: str, context: str | None, origin: str) -> tuple[Configuration, Any, str]:
    files = [f for f in _kubeconfig_files(value) if os.path.isfile(f)]
    if not files:
        raise KubeConfigError(f"{origin}: no such file: {value}")
    names, current = _contexts(files)
    chosen = context or current
    where = ", ".join(files)
    if not chosen:
        raise KubeConfigError(
            f"kubeconfig {where} has no current-context: pick one with --context ({', '.join(names) or 'it has none'})"
        )
    if chosen not in names:
        raise KubeConfigError(f"kubeconfig {where} has no context {chosen!r} (contexts: {', '.join(names) or 'none'})")
    cfg = Configuration()
    try:
        loader = await kube_config.load_kube_config(
            config_file=os.pathsep.join(files), context=chosen, client_configuration=cfg, persist_config=False
        )
    except (ConfigException, ValueError, KeyError, TypeError, AssertionError, OSError) as exc:
        raise KubeConfigError(f"kubeconfig {where}, context {chosen!r}: {str(exc) or type(exc).__name__}") from None
    if not cfg.host:
        raise KubeConfigError(f"kubeconfig {where}, context {chosen!r}: its cluster has no server")
    return cfg, loader, f"kubeconfig {where}, context {chosen}"


def _in_cluster(environ: Mapping[str, str], sa_dir: str) -> tuple[Configuration, str]:
    token, ca = os.path.join(sa_dir, "token"), os.path.join(sa_dir, "ca.crt")
    missing = [f for f in (token, ca) if not os.path.isfile(f)]
    if missing:
        raise KubeConfigError(
            "in a pod (KUBERNETES_SERVICE_HOST is set) but without a service-account "
            + " and ".join(missing)
            + ": mount the service account's token (automountServiceAccountToken) or pass --kubeconfig"
        )
    cfg = Configuration()
    try:
        # the library re-reads the token file every minute: projected tokens rotate
        kube_config.load_incluster_config(
            client_configuration=cfg, token_filename=token, cert_filename=ca, environ=dict(environ)
        )
    except ConfigException as exc:
        raise KubeConfigError(f"in-cluster service account ({sa_dir}): {exc}") from None
    return cfg, f"in-cluster service account ({cfg.host})"


async def _renew_tokens(loader: Any, cfg: Configuration) -> None:
    """Exec-plugin (EKS, GKE, AKS) and auth-provider tokens expire: the library renews them."""
    while True:
        try:
            await kube_config.refresh_token(loader, cfg)
            return  # a static token or client certificate: nothing to renew
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("renewing the kubeconfig user's token failed (retrying in a minute): %s", exc)
            await asyncio.sleep(60)


class KubeClient:
    """List, watch, get, create, replace, merge-patch, status and delete, over a kubernetes_asyncio ApiClient."""

    def __init__(self, api: ApiClient, source: str = "", page_size: int = PAGE_SIZE):
        self.api = api
        self.source = source
        self.page_size = page_size
        self._refresh: asyncio.Task | None = None

    @classmethod
    async def connect(
        cls,
        kubeconfig: str | None = None,
        context: str | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        service_account_dir: str = SA_DIR,
    ) -> KubeClient:
        """A client for the cluster the arguments and the environment name (see the module's doc)."""
        env = os.environ if environ is None else environ
        if kubeconfig:
            cfg, loader, source = await _from_kubeconfig(kubeconfig, context, "--kubeconfig")
        elif env.get("KUBECONFIG"):
            cfg, loader, source = await _from_kubeconfig(env["KUBECONFIG"], context, "KUBECONFIG")
        elif env.get("KUBERNETES_SERVICE_HOST") and not context:
            loader = None
            cfg, source = _in_cluster(env, service_account_dir)
        else:
            home = env.get("HOME") or os.path.expanduser("~")
            default = os.path.join(home, ".kube", "config")
            if not os.path.isfile(default):
                if context:
                    raise KubeConfigError(
                        f"--context {context} needs a kubeconfig: pass --kubeconfig, set KUBECONFIG or create {default}"
                    )
                raise KubeConfigError(
                    "no Kubernetes cluster to talk to: pass --kubeconfig, set KUBECONFIG, create "
                    f"{default}, or run in a pod with a service account (KUBERNETES_SERVICE_HOST and "
                    f"{service_account_dir}/token)"
                )
            cfg, loader, source = await _from_kubeconfig(default, context, default)
        api = ApiClient(configuration=cfg)
        api.user_agent = "agentgw-controller"
        client = cls(api, source)
        ctx = (loader.current_context or {}).get("context") if loader is not None else None
        if ctx and ctx.get("user"):
            client._refresh = asyncio.get_running_loop().create_task(_renew_tokens(loader, cfg))
        return client

    async def close(self) -> None:
        if self._refresh is not None:
            self._refresh.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._refresh
        await self.api.close()

    async def _call(
        self,
        method: str,
        path: str,
        query: list[tuple[str, str]] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> dict:
        try:
            out = await self.api.call_api(
                path,
                method,
                query_params=list(query or []),
                header_params={"Accept": "application/json", "Content-Type": content_type},
                body=body,
                response_types_map=_OBJECT,
                auth_settings=_AUTH,
                _return_http_data_only=True,
                _preload_content=True,
                _request_timeout=REQUEST_TIMEOUT,
            )
        except ApiException as exc:
            raise ApiError.from_exception(exc) from None
        return out if isinstance(out, dict) else {}

    # -- verbs --------------------------------------------------------------------------------
    async def list(
        self, res: Resource, namespace: str | None = None, label_selector: str | None = None
    ) -> tuple[list[dict], str]:
        """Every object, read in pages of ``page_size``; and the list's resourceVersion."""
        items: list[dict] = []
        token: str | None = None
        limit: int | None = self.page_size or None
        while True:
            query = [("labelSelector", label_selector)] if label_selector else []
            if limit:
                query.append(("limit", str(limit)))
            if token:
                query.append(("continue", token))
            try:
                body = await self._call("GET", res.path(namespace), query)
            except ApiError as exc:
                if exc.status != 410 or not token:
                    raise
                # the continue token outlived the server's history: list again, in one request
                log.info("list of %s: continue token expired; listing again", res.kind)
                items, token, limit = [], None, None
                continue
            page = body.get("items") or []
            for it in page:  # list items carry no kind/apiVersion
                it.setdefault("apiVersion", res.api_version)
                it.setdefault("kind", res.kind)
            items.extend(page)
            meta = body.get("metadata") or {}
            token = meta.get("continue") or None
            if token is None:
                return items, meta.get("resourceVersion", "")

    async def watch(
        self,
        res: Resource,
        resource_version: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        timeout_seconds: int = 300,
    ) -> AsyncIterator[tuple[str, dict]]:
        """Changes after ``resource_version`` until the server ends the watch (``timeoutSeconds``)."""
        path = res.path(namespace)

        async def request(**kw: Any) -> Any:
            """Open the watch stream (the library's Watch reads it)."""
            query = [
                ("watch", "true"),
                ("resourceVersion", kw["resource_version"]),
                ("allowWatchBookmarks", "true"),
                ("timeoutSeconds", str(kw["timeout_seconds"])),
            ]
            if label_selector:
                query.append(("labelSelector", label_selector))
            resp = await self.api.call_api(
                path,
                "GET",
                query_params=query,
                header_params={"Accept": "application/json"},
                auth_settings=_AUTH,
                _preload_content=False,
                # the server ends the watch at timeoutSeconds: a stream still open well after is dead
                _request_timeout=float(kw["timeout_seconds"] + 30),
            )
            if resp.status >= 400:  # a raw stream is not checked by the library
                body = await resp.read()
                resp.release()
                exc = ApiException(status=resp.status, reason=resp.reason)
                exc.body = body
                raise exc
            return resp

        watcher = Watch()
        try:
            async for ev in watcher.stream(request, resource_version=resource_version, timeout_seconds=timeout_seconds):
                if not isinstance(ev, dict):
                    raise ApiError(500, "InternalError", f"watch of {res.kind}: not a watch event: {str(ev)[:200]}")
                obj = ev.get("raw_object") or ev.get("object") or {}
                obj.setdefault("apiVersion", res.api_version)
                obj.setdefault("kind", res.kind)
                yield ev["type"], obj
        except ApiException as exc:
            err = ApiError.from_exception(exc) if exc.body else ApiError(int(exc.status or 0), str(exc.reason or ""))
            if err.status == 410:
                raise WatchExpired(err.message or str(exc.reason or "")) from None
            raise err from None
        finally:
            await watcher.close()

    async def get(self, res: Resource, namespace: str | None, name: str) -> dict:
        obj = await self._call("GET", res.path(namespace, name))
        obj.setdefault("apiVersion", res.api_version)
        obj.setdefault("kind", res.kind)
        return obj

    async def create(self, res: Resource, obj: dict) -> dict:
        return await self._call("POST", res.path((obj.get("metadata") or {}).get("namespace")), [STRICT], obj)

    async def replace(self, res: Resource, obj: dict) -> dict:
        m = obj["metadata"]
        return await self._call("PUT", res.path(m.get("namespace"), m["name"]), [STRICT], obj)

    async def replace_status(self, res: Resource, obj: dict) -> dict:
        m = obj["metadata"]
        return await self._call("PUT", res.path(m.get("namespace"), m["name"], "status"), None, obj)

    async def merge_patch(self, res: Resource, namespace: str | None, name: str, patch: dict) -> dict:
        return await self._call(
            "PATCH", res.path(namespace, name), [STRICT], patch, content_type="application/merge-patch+json"
        )

    async def delete(self, res: Resource, namespace: str | None, name: str) -> dict:
        return await self._call("DELETE", res.path(namespace, name))
