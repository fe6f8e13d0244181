"""How the controller reaches its cluster: credentials, pagination, watch resumption, field validation.

Everything runs against the stand-in API server (tests/kube/fakeapi.py), which requires the
bearer token of the kubeconfig or service account it was reached through, paginates lists
and serves HTTPS when asked; the controller finds it as it finds a real cluster: through a
kubeconfig file, ``KUBECONFIG``, or in-cluster service-account files and environment.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import sys
from pathlib import Path

import aiohttp
import pytest
import trustme
import yaml

from agentgw.kube.client import SA_DIR, ApiError, KubeClient, KubeConfigError, Resource
from agentgw.kube.controller import Controller
from agentgw.kube.manifests import load_manifests
from tests.kube.waiting import eventually

from .fakeapi import FakeApi

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
GW = "gateway.networking.k8s.io"
CONFIGMAPS = Resource("", "v1", "configmaps", "ConfigMap")
pytestmark = pytest.mark.timeout(90)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 80))


def _eventually(pred, timeout=20.0, what="condition"):
    return eventually(pred, timeout, what)


def _group(obj):
    av = obj["apiVersion"]
    return av.split("/")[0] if "/" in av else ""


def _gateway_class(name="agentgateway"):
    return {
        "apiVersion": f"{GW}/v1",
        "kind": "GatewayClass",
        "metadata": {"name": name},
        "spec": {"controllerName": "agentgw.dev/controller"},
    }


def _configmap(name, ns="apps"):
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns}, "data": {"k": name}}


def _accepted(api, kind, ns, name):
    st = (api.get(kind, ns, name) or {}).get("status") or {}
    return any(c["type"] == "Accepted" and c["status"] == "True" for c in st.get("conditions") or [])


async def _seed(api, objs):
    await api.put_object(GW, _gateway_class())
    for o in objs:
        await api.put_object(_group(o), o)


def _seed004():
    return [
        o for o in load_manifests(os.path.join(FIXTURES, "seed004_three_listeners")) if o["kind"] != "ReferenceGrant"
    ]


def _lists(api, plural):
    return [c for c in api.calls if c["path"].endswith(f"/{plural}") and "list" in c]


def _watches(api, plural):
    return [c for c in api.calls if c["path"].endswith(f"/{plural}") and c["query"].get("watch") == "true"]


# -- pagination, watch resumption, what writes ask for --------------------------------------------
def test_lists_are_paged_and_watches_resume_from_the_last_version(tmp_path):
    async def main():
        api = FakeApi()
        await api.start()
        await _seed(api, _seed004())
        for i in range(7):
            await api.put_object("", _configmap(f"cm{i}"))
        client = await api.connect(tmp_path)
        client.page_size = 3
        ctl = Controller(client, image="registry.example/agentgw:test", debounce=0.05)
        task = asyncio.get_running_loop().create_task(ctl.run())
        try:
            await _eventually(lambda: _accepted(api, "Gateway", "agentgateway-system", "agentgateway-proxy"))
            # seven ConfigMaps in pages of three: three requests, the last two with the first's continue chain
            pages = _lists(api, "configmaps")
            assert [c["query"].get("limit") for c in pages] == ["3", "3", "3"]
            assert "continue" not in pages[0]["query"]
            assert [c["query"].get("continue") for c in pages[1:]] == [p["list"]["continue"] for p in pages[:2]]
            assert "continue" not in pages[2]["list"]
            assert len(ctl.cache["ConfigMap"]) == 7
            # the watch starts at the list's resourceVersion (the first page's: all pages are one snapshot)
            list_rv = pages[0]["list"]["resourceVersion"]
            assert {p["list"]["resourceVersion"] for p in pages} == {list_rv}
            await _eventually(lambda: _watches(api, "configmaps"), what="configmap watch")
            assert _watches(api, "configmaps")[0]["query"]["resourceVersion"] == list_rv

            # the server ends every watch (as on a timeout or restart): each resumes where it was, no list
            n_watches = len(_watches(api, "configmaps"))
            await api.drop_watches()
            await _eventually(lambda: len(_watches(api, "configmaps")) > n_watches, what="resumed watch")
            assert _watches(api, "configmaps")[-1]["query"]["resourceVersion"] == list_rv
            created = await client.create(CONFIGMAPS, _configmap("cm-new"))
            await _eventually(lambda: ("apps", "cm-new") in ctl.cache["ConfigMap"], what="watched ConfigMap")
            n_watches = len(_watches(api, "configmaps"))
            await api.drop_watches()
            await _eventually(lambda: len(_watches(api, "configmaps")) > n_watches, what="resumed watch")
            assert _watches(api, "configmaps")[-1]["query"]["resourceVersion"] == created["metadata"]["resourceVersion"]
            assert len(_lists(api, "configmaps")) == 3 and ctl.relists == 0

            # every request carried the kubeconfig's token; object writes ask for strict validation, status writes don't
            assert {c["authorization"] for c in api.calls} == {f"Bearer {api.token}"}
            writes = [c for c in api.calls if c["method"] in ("POST", "PUT", "PATCH")]
            assert any(c["path"].endswith("/status") for c in writes)
            assert any(c["path"].endswith("/deployments") and c["method"] == "POST" for c in writes)
            for c in writes:
                want = None if c["path"].endswith("/status") else "Strict"
                assert c["query"].get("fieldValidation") == want, c
            assert ctl.last_error is None
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await client.close()
            await api.stop()

    run(main())


def test_an_expired_continue_token_lists_again_in_one_request(tmp_path):
    async def main():
        api = FakeApi()
        await api.start()
        for i in range(5):
            await api.put_object("", _configmap(f"cm{i}"))
        client = await api.connect(tmp_path)
        client.page_size = 2
        try:
            items, rv = await client.list(CONFIGMAPS, "apps")
            assert [o["metadata"]["name"] for o in items] == [f"cm{i}" for i in range(5)]
            assert all(o["kind"] == "ConfigMap" and o["apiVersion"] == "v1" for o in items)
            api.calls.clear()
            api.expire_next_continue = True  # the history behind the token is gone by the second page
            again, rv2 = await client.list(CONFIGMAPS, "apps")
            assert again == items and rv2 == rv
            assert [(c["query"].get("limit"), "continue" in c["query"], c["status"]) for c in api.calls] == [
                ("2", False, 200),
                ("2", True, 410),
                (None, False, 200),
            ]
            # the same after compaction, through the namespace-less (all namespaces) path
            await api.put_object("", _configmap("other", ns="elsewhere"))
            api.calls.clear()
            api.compact()
            everywhere, _ = await client.list(CONFIGMAPS)
            assert len(everywhere) == 6
        finally:
            await client.close()
            await api.stop()

    run(main())


def test_watch_expiry_and_api_errors_are_reported_precisely(tmp_path):
    async def main():
        api = FakeApi()
        await api.start()
        client = await api.connect(tmp_path)
        try:
            await api.put_object("", _configmap("a"))
            _, rv = await client.list(CONFIGMAPS, "apps")
            api.compact()
            with pytest.raises(Exception) as ei:
                async for _ in client.watch(CONFIGMAPS, str(int(rv) - 1), "apps", timeout_seconds=2):
                    pass
            assert type(ei.value).__name__ == "WatchExpired"
            with pytest.raises(ApiError) as ei:
                await client.get(CONFIGMAPS, "apps", "missing")
            assert (ei.value.status, ei.value.reason) == (404, "NotFound")
            with pytest.raises(ApiError) as ei:
                await client.create(CONFIGMAPS, _configmap("a"))
            assert (ei.value.status, ei.value.reason) == (409, "AlreadyExists")
        finally:
            await client.close()
            await api.stop()

    run(main())


def test_a_wrong_token_is_refused(tmp_path):
    async def main():
        api = FakeApi()
        await api.start()
        path = api.write_kubeconfig(str(tmp_path / "kubeconfig"), token="not-the-token")
        client = await KubeClient.connect(kubeconfig=path)
        try:
            with pytest.raises(ApiError) as ei:
                await client.list(CONFIGMAPS)
            assert ei.value.status == 401
            with pytest.raises(ApiError) as ei:
                async for _ in client.watch(CONFIGMAPS, "1", timeout_seconds=1):
                    pass
            assert ei.value.status == 401
        finally:
            await client.close()
            await api.stop()

    run(main())


# -- in-cluster: service-account token and CA, KUBERNETES_SERVICE_HOST/PORT, TLS -------------------------
def _tls():
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server)
    return ca, server


def test_in_cluster_service_account_over_tls(tmp_path):
    async def main():
        ca, server_ctx = _tls()
        # a cluster without the other vendors' CRDs nor ReferenceGrant: those kinds are not watched
        unserved = (
            "enterpriseagentgateway.solo.io/v1alpha1",
            "ratelimit.solo.io/v1alpha1",
            "agentgateway.alibabacloud.com/v1alpha1",
            f"{GW}/v1beta1",
        )
        api = FakeApi(token="projected-sa-token", unserved=unserved)
        await api.start(ssl_context=server_ctx)
        await _seed(api, _seed004())
        sa = tmp_path / "serviceaccount"
        sa.mkdir()
        (sa / "token").write_text("projected-sa-token")
        ca.cert_pem.write_to_path(str(sa / "ca.crt"))
        env = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(api.port)}
        client = await KubeClient.connect(environ=env, service_account_dir=str(sa))
        assert client.source == f"in-cluster service account (https://127.0.0.1:{api.port})"
        ctl = Controller(client, image="registry.example/agentgw:test", debounce=0.05)
        task = asyncio.get_running_loop().create_task(ctl.run())
        try:
            await _eventually(lambda: _accepted(api, "Gateway", "agentgateway-system", "agentgateway-proxy"))
            assert api.get("Deployment", "agentgateway-system", "agentgateway-proxy") is not None
            assert {c["authorization"] for c in api.calls} == {"Bearer projected-sa-token"}
            for plural in ("ratelimitconfigs", "backends", "referencegrants"):
                assert [c["status"] for c in api.calls if c["path"].endswith("/" + plural)] == [404], plural
            assert ctl.last_error is None
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await client.close()

        # a CA that did not sign the server's certificate: refused, nothing sent
        other = tmp_path / "other-sa"
        other.mkdir()
        (other / "token").write_text("projected-sa-token")
        trustme.CA().cert_pem.write_to_path(str(other / "ca.crt"))
        n = len(api.calls)
        client = await KubeClient.connect(environ=env, service_account_dir=str(other))
        try:
            with pytest.raises(aiohttp.ClientConnectorCertificateError) as ei:
                await client.list(CONFIGMAPS)
            assert isinstance(ei.value.certificate_error, ssl.SSLCertVerificationError)
            assert len(api.calls) == n
        finally:
            await client.close()
            await api.stop()

    run(main())


def test_kubeconfig_with_tls_and_a_chosen_context(tmp_path):
    async def main():
        ca, server_ctx = _tls()
        api = FakeApi()
        await api.start(ssl_context=server_ctx)
        await api.put_object("", _configmap("a"))
        ca.cert_pem.write_to_path(str(tmp_path / "ca.crt"))
        path = api.write_kubeconfig(str(tmp_path / "kubeconfig"), ca_file="ca.crt")  # relative to the file
        doc = yaml.safe_load(Path(path).read_text())
        # the current context is a cluster that is not there; --context picks the stand-in
        doc["clusters"].append({"name": "gone", "cluster": {"server": "https://127.0.0.1:9"}})
        doc["contexts"].append({"name": "gone", "context": {"cluster": "gone", "user": "stand-in"}})
        doc["current-context"] = "gone"
        with open(path, "w") as f:
            yaml.safe_dump(doc, f)
        client = await KubeClient.connect(kubeconfig=path, context="stand-in", environ={})
        try:
            assert client.source == f"kubeconfig {path}, context stand-in"
            items, _ = await client.list(CONFIGMAPS)
            assert [o["metadata"]["name"] for o in items] == ["a"]
        finally:
            await client.close()
            await api.stop()

    run(main())


# -- where the credentials come from, and what happens without -----------------------------------
def _kubeconfig(path, contexts, current=None, clusters=(), users=()):
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": list(clusters),
        "users": list(users),
        "contexts": [{"name": n, "context": c} for n, c in contexts.items()],
    }
    if current:
        doc["current-context"] = current
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def test_credential_errors_name_what_is_missing(tmp_path):
    async def main():
        home = tmp_path / "home"
        home.mkdir()
        with pytest.raises(KubeConfigError) as ei:
            await KubeClient.connect(environ={"HOME": str(home)})
        msg = str(ei.value)
        assert msg.startswith("no Kubernetes cluster to talk to: pass --kubeconfig, set KUBECONFIG, create ")
        assert f"{home}/.kube/config" in msg and f"{SA_DIR}/token" in msg

        with pytest.raises(KubeConfigError, match="--context prod needs a kubeconfig"):
            await KubeClient.connect(context="prod", environ={"HOME": str(home)})
        with pytest.raises(KubeConfigError, match=r"^--kubeconfig: no such file: /nonexistent/kubeconfig$"):
            await KubeClient.connect(kubeconfig="/nonexistent/kubeconfig", environ={})
        with pytest.raises(KubeConfigError, match=r"^KUBECONFIG: no such file: /nonexistent/a:/nonexistent/b$"):
            await KubeClient.connect(environ={"KUBECONFIG": "/nonexistent/a:/nonexistent/b"})

        cluster = [{"name": "c", "cluster": {"server": "http://127.0.0.1:9"}}]
        kc = _kubeconfig(tmp_path / "kc", {"dev": {"cluster": "c"}, "prod": {"cluster": "c"}}, clusters=cluster)
        with pytest.raises(KubeConfigError, match=r"has no current-context: pick one with --context \(dev, prod\)"):
            await KubeClient.connect(kubeconfig=kc, environ={})
        with pytest.raises(KubeConfigError, match=r"has no context 'staging' \(contexts: dev, prod\)"):
            await KubeClient.connect(kubeconfig=kc, context="staging", environ={})
        broken = _kubeconfig(tmp_path / "broken", {"dev": {"cluster": "missing"}}, current="dev", clusters=cluster)
        with pytest.raises(KubeConfigError, match=r"kubeconfig .*broken, context 'dev': .*missing"):
            await KubeClient.connect(kubeconfig=broken, environ={})

        # in a pod whose service account token is not mounted
        sa = tmp_path / "no-token"
        sa.mkdir()
        with pytest.raises(KubeConfigError) as ei:
            await KubeClient.connect(
                environ={"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"},
                service_account_dir=str(sa),
            )
        assert str(ei.value) == (
            f"in a pod (KUBERNETES_SERVICE_HOST is set) but without a service-account {sa}/token and {sa}/ca.crt: "
            "mount the service account's token (automountServiceAccountToken) or pass --kubeconfig"
        )

    run(main())


def test_default_kubeconfig_and_KUBECONFIG_merge(tmp_path):
    async def main():
        api = FakeApi()
        await api.start()
        await api.put_object("", _configmap("a"))
        try:
            # ~/.kube/config when nothing else is set
            home = tmp_path / "home"
            (home / ".kube").mkdir(parents=True)
            api.write_kubeconfig(str(home / ".kube" / "config"))
            client = await KubeClient.connect(environ={"HOME": str(home)})
            assert client.source == f"kubeconfig {home}/.kube/config, context stand-in"
            assert len((await client.list(CONFIGMAPS))[0]) == 1
            await client.close()

            # KUBECONFIG: a missing file is skipped; the first current-context wins; entries merge across files
            users = [{"name": "me", "user": {"token": api.token}}]
            clusters = [{"name": "stand-in", "cluster": {"server": api.url}}]
            first = _kubeconfig(tmp_path / "first", {"work": {"cluster": "stand-in", "user": "me"}}, current="work")
            second = _kubeconfig(
                tmp_path / "second",
                {"other": {"cluster": "stand-in"}},
                current="other",
                clusters=clusters,
                users=users,
            )
            env = {"KUBECONFIG": f"{tmp_path}/missing:{first}:{second}", "HOME": str(home)}
            client = await KubeClient.connect(environ=env)
            assert client.source == f"kubeconfig {first}, {second}, context work"
            assert len((await client.list(CONFIGMAPS))[0]) == 1
            assert api.calls[-1]["authorization"] == f"Bearer {api.token}"
            await client.close()
        finally:
            await api.stop()

    run(main())


# -- `agentgw controller` as a process -------------------------------------------------------------
def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST")}
    env.update(extra)
    return env


async def _controller_process(tmp_path, args, env):
    stderr = open(tmp_path / "controller.log", "wb")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agentgw",
        "controller",
        "--proxy-image",
        "registry.example/agentgw:test",
        *args,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=stderr,
    )
    stderr.close()
    return proc


async def _end(proc):
    if proc.returncode is None:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()


def test_controller_process_with_kubeconfig_and_context_flags(tmp_path):
    async def main():
        api = FakeApi()
        await api.start()
        await _seed(api, _seed004())
        path = api.write_kubeconfig(str(tmp_path / "kubeconfig"))
        doc = yaml.safe_load(Path(path).read_text())
        doc["clusters"].append({"name": "gone", "cluster": {"server": "http://127.0.0.1:9"}})
        doc["contexts"].append({"name": "gone", "context": {"cluster": "gone"}})
        doc["current-context"] = "gone"
        with open(path, "w") as f:
            yaml.safe_dump(doc, f)
        home = tmp_path / "home"
        home.mkdir()
        proc = await _controller_process(
            tmp_path, ["--kubeconfig", path, "--context", "stand-in"], _env(HOME=str(home))
        )
        try:
            await _eventually(
                lambda: (
                    proc.returncode is not None
                    or _accepted(api, "Gateway", "agentgateway-system", "agentgateway-proxy")
                ),
                timeout=40,
                what="Gateway accepted by the controller process",
            )
            log = (tmp_path / "controller.log").read_text()
            assert proc.returncode is None, log
            assert f"cluster: kubeconfig {path}, context stand-in" in log
            assert api.get("Deployment", "agentgateway-system", "agentgateway-proxy") is not None
        finally:
            await _end(proc)
            await api.stop()

    run(main())


def test_controller_process_without_a_cluster_exits_with_the_reason(tmp_path):
    async def main():
        home = tmp_path / "home"
        home.mkdir()
        proc = await _controller_process(tmp_path, [], _env(HOME=str(home)))
        try:
            assert await asyncio.wait_for(proc.wait(), 40) == 1
        finally:
            await _end(proc)
        log = (tmp_path / "controller.log").read_text()
        assert log.startswith("agentgw controller: no Kubernetes cluster to talk to: pass --kubeconfig"), log
        assert "Traceback" not in log

    run(main())
