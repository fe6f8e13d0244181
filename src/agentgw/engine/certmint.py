"""Certificates minted per SNI name from a CA (listener ``tls.mode: dynamicCa``).

A listener that terminates TLS for whatever name a client asks for (an egress proxy
inspecting every HTTPS destination) cannot hold a certificate for each: it holds a CA,
and ``DynamicCerts.context_for(name)`` issues a short-lived leaf certificate for
``name`` signed by it, once per name (kept, most recently used first, up to
``MAX_NAMES``). Clients must trust the CA. One leaf key (P-256) serves every name.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
import tempfile
from collections import OrderedDict
from collections.abc import Callable

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

MAX_NAMES = 1024
#: how long a minted certificate is valid (and kept at most)
LIFETIME = datetime.timedelta(days=1)


class DynamicCerts:
    """Leaf certificates for SNI names, signed by the CA in ``ca_cert`` / ``ca_key``
    (PEM files); ``configure(ctx)`` applies the listener's other settings (versions,
    ciphers, client certificates, ALPN) to each context."""

    def __init__(self, ca_cert: str, ca_key: str, configure: Callable[[ssl.SSLContext], None]):
        with open(ca_cert, "rb") as f:
            self.ca_pem = f.read()
        self.ca = x509.load_pem_x509_certificate(self.ca_pem)
        with open(ca_key, "rb") as f:
            key = serialization.load_pem_private_key(f.read(), password=None)
        self.ca_key = key

        def spki(k) -> bytes:
            return k.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)

        if spki(self.ca.public_key()) != spki(key.public_key()):
            raise ValueError("the key is not the CA certificate's")
        try:
            bc = self.ca.extensions.get_extension_for_class(x509.BasicConstraints).value
            if not bc.ca:
                raise ValueError("the certificate is not a CA (basicConstraints ca: false)")
        except x509.ExtensionNotFound:
            raise ValueError("the certificate is not a CA (no basicConstraints)") from None
        self.configure = configure
        self.verify_mode = ssl.CERT_NONE  # (the listener's, set by its compiler)
        self.leaf_key = ec.generate_private_key(ec.SECP256R1())
        self.leaf_key_pem = self.leaf_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        self._cache: OrderedDict[str, tuple[ssl.SSLContext, datetime.datetime]] = OrderedDict()

    def context_for(self, name: str) -> ssl.SSLContext:
        now = datetime.datetime.now(datetime.timezone.utc)  # noqa: UP017
        hit = self._cache.get(name)
        if hit is not None and hit[1] > now + datetime.timedelta(minutes=5):
            self._cache.move_to_end(name)
            return hit[0]
        ctx = self._mint(name, now)
        self._cache[name] = (ctx, now + LIFETIME)
        self._cache.move_to_end(name)
        while len(self._cache) > MAX_NAMES:
            self._cache.popitem(last=False)
        return ctx

    def _mint(self, name: str, now: datetime.datetime) -> ssl.SSLContext:
        try:
            san: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(name))
        except ValueError:
            san = x509.DNSName(name)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name[:64])]))
            .issuer_name(self.ca.subject)
            .public_key(self.leaf_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + LIFETIME)
            .add_extension(x509.SubjectAlternativeName([san]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(self.ca_key, hashes.SHA256())  # type: ignore[arg-type]
        )
        chain = cert.public_bytes(serialization.Encoding.PEM) + self.ca_pem
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        # (the ssl module loads a chain only from files: a private file, gone once read)
        fd, path = tempfile.mkstemp(suffix=".pem")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(chain + self.leaf_key_pem)
            ctx.load_cert_chain(path)
        finally:
            os.unlink(path)
        self.configure(ctx)
        return ctx
