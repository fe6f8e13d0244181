"""Every policy example in docs/identity.md loads and compiles (what `agentgw validate`
does), with the files it names created in a temp dir."""

from __future__ import annotations

import re

import yaml

from agentgw.compile import compile_config
from agentgw.config import load_config_file
from tests.support.harness import REPO_ROOT, make_tls_files


class _NoServices:
    pool = None
    on_upstream_error = None


def _blocks() -> list[str]:
    text = (REPO_ROOT / "docs" / "identity.md").read_text()
    return [b for b in re.findall(r"```yaml\n(.*?)```", text, re.S)]


def test_doc_examples_validate(tmp_path):
    ca = tmp_path / "ca.crt"
    tls = make_tls_files(tmp_path / "tls")
    ca.write_bytes(tls.ca_cert.read_bytes())
    (tmp_path / "token").write_text("t")
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "key1").write_text("k")
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text("u:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n")
    subst = {
        "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt": str(ca),
        "/var/run/secrets/kubernetes.io/serviceaccount/token": str(tmp_path / "token"),
        "/etc/agentgw/api-keys": str(tmp_path / "keys"),
        "/etc/agentgw/htpasswd": str(htpasswd),
        "/etc/agentgw/agent-secret": str(tmp_path / "token"),
        "/etc/agentgw/resource-secret": str(tmp_path / "token"),
    }
    checked = 0
    for block in _blocks():
        for k, v in subst.items():
            block = block.replace(k, v)
        doc = yaml.safe_load(block)
        if isinstance(doc, dict) and "binds" in doc:
            cfg = doc
        elif isinstance(doc, dict) and set(doc) <= {
            "jwtAuth",
            "apiKey",
            "basicAuth",
            "serviceAccountAuth",
            "extAuthz",
            "authorization",
            "backendAuth",
            "transformations",
        }:
            cfg = {
                "binds": [
                    {
                        "port": 3000,
                        "listeners": [{"routes": [{"policies": doc, "backends": [{"host": "127.0.0.1:8080"}]}]}],
                    }
                ]
            }
        else:
            continue  # location one-liners, the Secret manifest
        f = tmp_path / f"c{checked}.yaml"
        f.write_text(yaml.safe_dump(cfg))
        compile_config(load_config_file(str(f)), _NoServices(), str(tmp_path))  # raises ConfigError
        checked += 1
    assert checked >= 8
