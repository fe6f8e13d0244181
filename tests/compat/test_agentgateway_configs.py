"""agentgateway's own configs load unchanged.

Each file under ``tests/compat/agentgateway`` (see its README) is loaded as
``agentgw validate -f <file>`` loads it, from a copy of that tree as working directory
(agentgateway's READMEs run them from the repository root, and some name files relative to
it), with every environment variable the file references set, as its README asks, and the
example TLS key pair its README expects generated.

A config either loads, or is listed in ``REFUSED`` with the field path and the reason the
refusal must name. ``REFUSED`` only shrinks: a config that starts to load must leave it.
"""

from __future__ import annotations

import datetime
import re
import shutil
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agentgw.compile import check_config_file
from agentgw.config import ConfigError

FIXTURES = Path(__file__).parent / "agentgateway"
CONFIGS = sorted(
    str(p.relative_to(FIXTURES)) for p in FIXTURES.rglob("*.yaml") if p.name != "README.md"
)

# config → substrings the load error must contain: the field's path and why it is refused
REFUSED: dict[str, tuple[str, ...]] = {
    "examples/traffic-spiffe/config.yaml": ("config.spiffe: SPIFFE workload certificates",),
    # the UI exposed on a traffic listener with nothing to authenticate who reaches it
    "modern.yaml": ("ui.policies", "need authentication"),
}

_VAR = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")


def _key_pair(path_cert: Path, path_key: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    path_key.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("agentgateway")
    shutil.copytree(FIXTURES, root, dirs_exist_ok=True)
    certs = root / "examples/mcp-tls/certs"
    certs.mkdir(parents=True, exist_ok=True)
    _key_pair(certs / "cert.pem", certs / "key.pem")  # the example pair its README uses
    _key_pair(certs / "ca-cert.pem", certs / "ca-key.pem")
    return root


# variables a README asks for that its config does not name
README_ENV = {
    "examples/traffic-oidc/config.yaml": {"OIDC_COOKIE_SECRET": "ab" * 32},
    "examples/traffic-unified-gateway/config.yaml": {"OIDC_COOKIE_SECRET": "ab" * 32},
}


def _load(tree: Path, name: str, monkeypatch) -> ConfigError | None:
    monkeypatch.chdir(tree)
    for var in set(_VAR.findall((tree / name).read_text())):
        monkeypatch.setenv(var, f"test-{var.lower()}")
    for var, value in README_ENV.get(name, {}).items():
        monkeypatch.setenv(var, value)
    try:
        check_config_file(name)
    except ConfigError as exc:
        return exc
    return None


def test_the_fixtures_are_the_whole_set():
    assert len(CONFIGS) == 59
    assert set(REFUSED) <= set(CONFIGS)


@pytest.mark.parametrize("name", CONFIGS)
def test_config_loads_or_is_refused_with_its_reason(tree, name, monkeypatch):
    err = _load(tree, name, monkeypatch)
    if name not in REFUSED:
        assert err is None, f"{name} does not load:\n{err}"
        return
    assert err is not None, f"{name} loads now: take it out of REFUSED"
    for part in REFUSED[name]:
        assert part in str(err), f"{name}: {part!r} not in\n{err}"
