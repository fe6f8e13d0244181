"""Go/Rust-style duration strings ("1h30m", "500ms", "1.5s").

Config files written for agentgateway express every timeout and interval as a
duration string, so agentgw parses the same grammar.  Parsing happens once at
load time; the runtime only ever sees plain float seconds.

`Duration` is a ``float`` subclass (seconds) that remembers the string it was
parsed from, so a config dump shows ``"1m30s"`` rather than ``90.0``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import PlainSerializer, PlainValidator, WithJsonSchema

__all__ = ["Duration", "DurationField", "parse_duration"]

# Longest unit names first so "ms" wins over "m" and "us" over "s".
_UNITS: dict[str, float] = {
    "ns": 1e-9,
    "us": 1e-6,
    "\u00b5s": 1e-6,  # micro sign
    "\u03bcs": 1e-6,  # greek mu
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}
_COMPONENT = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h|d)")


def parse_duration(text: str) -> float:
    """Parse a duration such as ``"1h30m"``, ``"500ms"`` or ``"1.5s"`` into seconds.

    Accepts a sequence of ``<number><unit>`` components with units ns, us (or
    µs), ms, s, m, h and d, optionally with a leading sign.  A bare ``"0"`` is
    allowed (as in Go); any other number without a unit is rejected because
    "5" leaves the unit to the reader's imagination.

    Raises ``ValueError`` on anything else, including negative durations.
    """
    if not isinstance(text, str):
        raise ValueError(f"duration must be a string like '10s', got {type(text).__name__}")
    s = text.strip()
    if not s:
        raise ValueError("duration must not be empty")
    sign = 1.0
    if s[0] in "+-":
        sign = -1.0 if s[0] == "-" else 1.0
        s = s[1:]
    if s == "0":
        return 0.0
    pos = 0
    total = 0.0
    while pos < len(s):
        m = _COMPONENT.match(s, pos)
        if m is None:
            raise ValueError(
                f"invalid duration {text!r}: expected a number with a unit "
                "(ns, us, ms, s, m, h, d), e.g. '10s', '500ms', '1h30m'"
            )
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    total *= sign
    if total < 0:
        raise ValueError(f"invalid duration {text!r}: must not be negative")
    return total


class Duration(float):
    """Seconds as a float, remembering the original duration string in ``raw``."""

    raw: str

    def __new__(cls, seconds: float, raw: str | None = None) -> Duration:
        obj = super().__new__(cls, seconds)
        obj.raw = raw if raw is not None else _format_seconds(seconds)
        return obj

    @classmethod
    def parse(cls, text: str) -> Duration:
        return cls(parse_duration(text), text.strip())

    def __repr__(self) -> str:
        return f"Duration({self.raw!r})"

    def __reduce__(self):  # keep pickling/copying working despite __new__ signature
        return (Duration, (float(self), self.raw))


def _format_seconds(seconds: float) -> str:
    if seconds == int(seconds):
        return f"{int(seconds)}s"
    if seconds < 1:
        ms = seconds * 1000
        if ms == int(ms):
            return f"{int(ms)}ms"
    return f"{seconds}s"


def _validate(value: Any) -> Duration:
    if isinstance(value, Duration):
        return value
    if isinstance(value, bool):
        raise ValueError("duration must be a string like '10s', got a boolean")
    if isinstance(value, (int, float)):
        if value == 0:
            return Duration(0.0, "0s")
        raise ValueError(f"duration {value!r} has no unit; write it as a string like '{value}s' or '{value}ms'")
    if isinstance(value, str):
        return Duration.parse(value)
    raise ValueError(f"duration must be a string like '10s', got {type(value).__name__}")


#: Field type for durations: validates strings into `Duration`, dumps back to the string.
DurationField = Annotated[
    Duration,
    PlainValidator(_validate),
    PlainSerializer(lambda d: d.raw, return_type=str),
    WithJsonSchema({"type": "string", "description": "duration, e.g. '10s', '1m30s', '500ms'"}),
]
