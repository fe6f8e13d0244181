"""Incremental server-sent-events parsing and encoding."""

from __future__ import annotations

import orjson


class SSEParser:
    """Feed bytes, get ``(event, data)`` pairs for every complete event."""

    __slots__ = ("buf",)

    def __init__(self):
        self.buf = b""

    def feed(self, data: bytes) -> list[tuple[str | None, str]]:
        buf = self.buf + data
        if b"\r" in buf:
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        out = []
        while True:
            i = buf.find(b"\n\n")
            if i < 0:
                break
            block, buf = buf[:i], buf[i + 2 :]
            event = None
            data_lines = []
            for line in block.split(b"\n"):
                if line.startswith(b"data:"):
                    v = line[5:]
                    data_lines.append(v[1:] if v.startswith(b" ") else v)
                elif line.startswith(b"event:"):
                    event = line[6:].strip().decode()
            if data_lines or event:
                out.append((event, b"\n".join(data_lines).decode("utf-8", "replace")))
        self.buf = buf
        return out


def encode(obj, event: str | None = None) -> bytes:
    data = orjson.dumps(obj)
    if event:
        return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"
    return b"data: " + data + b"\n\n"


DONE = b"data: [DONE]\n\n"
