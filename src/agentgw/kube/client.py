"""A small Kubernetes API client on aiohttp: list, watch, get, create, replace, merge-patch, status.

Only what the controller uses, spoken as the API documents it: lists return a
``resourceVersion`` to watch from; a watch streams JSON lines ``{type, object}`` and ends
with an ``ERROR`` event of code 410 when that version is too old (then: list again);
``PUT`` carries ``metadata.resourceVersion`` and fails with 409 when the object changed
meanwhile (then: read again and retry). Writes of objects (not of status) ask for strict
field validation (``fieldValidation=Strict``): a field the API server does not know is an
error, never silently dropped.
"""

from __future__ import annotations

import json
import os
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp

SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
STRICT = {"fieldValidation": "Strict"}


class ApiError(Exception):
    def __init__(self, status: int, reason: str, message: str = ""):
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


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


class KubeClient:
    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        ssl_ctx: ssl.SSLContext | bool | None = None,
        token_file: str | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._token_file = token_file
        self._ssl = ssl_ctx
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_environment(cls) -> KubeClient:
        """In-cluster config (service account token + CA), or ``AGENTGW_KUBE_API`` (plain URL, no auth)."""
        url = os.environ.get("AGENTGW_KUBE_API")
        if url:
            return cls(url)
        host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        if not host:
            raise RuntimeError(
                "not in a cluster: KUBERNETES_SERVICE_HOST is unset (set AGENTGW_KUBE_API for a plain-HTTP API)"
            )
        if ":" in host:
            host = f"[{host}]"
        ctx = ssl.create_default_context(cafile=os.path.join(SA_DIR, "ca.crt"))
        return cls(f"https://{host}:{port}", ssl_ctx=ctx, token_file=os.path.join(SA_DIR, "token"))

    def _headers(self, content_type: str | None = None) -> dict[str, str]:
        h = {"Accept": "application/json"}
        token = self._token
        if self._token_file:
            with open(self._token_file) as f:  # re-read: projected tokens rotate
                token = f.read().strip()
        if token:
            h["Authorization"] = f"Bearer {token}"
        if content_type:
            h["Content-Type"] = content_type
        return h

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=10))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _request(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: dict | None = None,
        content_type: str = "application/json",
    ) -> dict:
        data = json.dumps(body) if body is not None else None
        async with self.session.request(
            method,
            self.base_url + path,
            data=data,
            params=params,
            headers=self._headers(content_type if data else None),
            ssl=self._ssl,
            timeout=aiohttp.ClientTimeout(total=30),
        ) as resp:
            text = await resp.text()
            try:
                payload = json.loads(text) if text else {}
            except ValueError:
                payload = {"message": text}
            if resp.status >= 400:
                raise ApiError(resp.status, payload.get("reason", resp.reason or ""), payload.get("message", text))
            return payload

    # -- verbs ------------------------------------------------------------------------------
    async def list(
        self, res: Resource, namespace: str | None = None, label_selector: str | None = None
    ) -> tuple[list[dict], str]:
        params = {"labelSelector": label_selector} if label_selector else None
        body = await self._request("GET", res.path(namespace), params=params)
        items = body.get("items") or []
        for it in items:  # list items carry no kind/apiVersion
            it.setdefault("apiVersion", res.api_version)
            it.setdefault("kind", res.kind)
        return items, (body.get("metadata") or {}).get("resourceVersion", "")

    async def watch(
        self,
        res: Resource,
        resource_version: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        timeout_seconds: int = 300,
    ) -> AsyncIterator[tuple[str, dict]]:
        params = {
            "watch": "true",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(timeout_seconds),
        }
        if label_selector:
            params["labelSelector"] = label_selector
        async with self.session.get(
            self.base_url + res.path(namespace),
            params=params,
            headers=self._headers(),
            ssl=self._ssl,
            timeout=aiohttp.ClientTimeout(total=timeout_seconds + 30, sock_read=timeout_seconds + 30),
        ) as resp:
            if resp.status == 410:
                raise WatchExpired()
            if resp.status >= 400:
                raise ApiError(resp.status, resp.reason or "", await resp.text())
            async for line in resp.content:
                line = line.strip()
                if not line:
                    continue
                ev = json.loads(line)
                typ, obj = ev.get("type"), ev.get("object") or {}
                if typ == "ERROR":
                    if obj.get("code") == 410:
                        raise WatchExpired()
                    raise ApiError(obj.get("code", 500), obj.get("reason", ""), obj.get("message", ""))
                obj.setdefault("apiVersion", res.api_version)
                obj.setdefault("kind", res.kind)
                yield typ, obj

    async def get(self, res: Resource, namespace: str | None, name: str) -> dict:
        obj = await self._request("GET", res.path(namespace, name))
        obj.setdefault("apiVersion", res.api_version)
        obj.setdefault("kind", res.kind)
        return obj

    async def create(self, res: Resource, obj: dict) -> dict:
        return await self._request("POST", res.path((obj.get("metadata") or {}).get("namespace")), obj, params=STRICT)

    async def replace(self, res: Resource, obj: dict) -> dict:
        m = obj["metadata"]
        return await self._request("PUT", res.path(m.get("namespace"), m["name"]), obj, params=STRICT)

    async def replace_status(self, res: Resource, obj: dict) -> dict:
        m = obj["metadata"]
        return await self._request("PUT", res.path(m.get("namespace"), m["name"], "status"), obj)

    async def merge_patch(self, res: Resource, namespace: str | None, name: str, patch: dict) -> dict:
        return await self._request(
            "PATCH", res.path(namespace, name), patch, params=STRICT, content_type="application/merge-patch+json"
        )

    async def delete(self, res: Resource, namespace: str | None, name: str) -> dict:
        return await self._request("DELETE", res.path(namespace, name))
