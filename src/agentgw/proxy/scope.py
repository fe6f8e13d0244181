"""What a feature compiler may use of the compile in progress.

``compile.Compiler`` walks the config and hands each feature (a policy, a backend kind,
the LLM section, telemetry) a :class:`CompileScope`: where to report a problem (at the
field's own path), how to read a file named in the config, the backend TLS and HTTP
settings every upstream shares, the named top-level backends, the process's shared
services, and a per-load cache for objects several routes share. Feature compilers use
only this, never the compiler's internals, and never import ``compile``: features sit
below it.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, overload

if TYPE_CHECKING:
    from ..config import models as m

T = TypeVar("T")


class ErrorSink(Protocol):
    def add(self, path: str, msg: str) -> None:
        """Report ``msg`` at config path ``path`` (``binds[0].listeners[1].routes[2]...``);
        the load fails with every problem reported."""
        ...


class CompileScope(Protocol):
    #: the whole config being compiled (process-wide settings a feature reads)
    cfg: m.LocalConfig
    #: the process's shared services: connection pool, metrics, event loop, registries
    services: Any
    errors: ErrorSink
    #: logged once the load succeeds: what is accepted with a caveat worth saying
    warnings: list[str]
    #: seconds, for new upstream connections (config.backend.connectTimeout)
    connect_timeout: float
    #: the top-level ``backends`` by name: (index, model)
    named: dict[str, tuple[int, m.NamedBackend]]

    @overload
    def path(self, p: str) -> str: ...
    @overload
    def path(self, p: None) -> None: ...
    def path(self, p: str | None) -> str | None:
        """A file named in the config, relative to the config file's directory."""
        ...

    def refuse_fields(self, obj: object, fields: Mapping[str, str], path: str) -> None:
        """Report each of ``fields`` (attribute → file key) set on ``obj`` as not supported."""
        ...

    def backend_tls(self, t: m.BackendTLS, path: str, *, http2: bool = False) -> tuple[ssl.SSLContext | None, str]:
        """The client TLS context for a ``backendTLS`` policy (shared by equal settings)
        and its cache key, which pooled connections are keyed by; with ``http2``, the
        context offers ``h2`` by ALPN."""
        ...

    def backend_http(self, h: m.BackendHTTP | None, path: str, *, http2_ok: bool = False) -> float | None:
        """A backend ``http`` policy: its request timeout in seconds, or None. Its
        ``version`` is checked; HTTP/2 is refused unless ``http2_ok`` (the caller's
        backends can speak it: see :meth:`backend_version`)."""
        ...

    def backend_version(self, h: m.BackendHTTP | None) -> str | None:
        """The protocol a backend ``http`` policy asks for: ``"2"``, ``"1.1"``, or None
        (unset: HTTP/1.1, and HTTP/2 for gRPC calls)."""
        ...

    def shared(self, key: str, make: Callable[[], T]) -> T:
        """The one object under ``key`` for this load, made by ``make`` on first use."""
        ...
