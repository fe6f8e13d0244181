# Types of the C helpers in _speedups.c; each has a pure-Python twin in heads.py.
from collections.abc import Iterable

def scan_response_head(buf: bytes, start: int, /) -> tuple[int, bytes, bytes | None, bytes | None, bool]: ...
def decode_fields(fields: list[bytes], /) -> tuple[list[tuple[str, str]], list[str], int]: ...
def build_request_head(
    method: str,
    target: str,
    host: str | None,
    headers: Iterable[tuple[str, str]],
    client_ip: str,
    scheme: str,
    default_host: str,
    body_len: int,
    chunked: bool,
    /,
) -> bytes | None: ...

class FieldSink(list[bytes]):
    def __call__(self, name: bytes, value: bytes, /) -> None: ...

def access_line(
    json: bool,
    time: str | None,
    bind: str,
    listener: str,
    route: str,
    backend: str,
    client: str,
    method: str,
    path: str,
    host: str,
    status: int,
    duration_s: float,
    bytes_sent: int,
    bytes_received: int,
    /,
) -> bytes | None: ...
