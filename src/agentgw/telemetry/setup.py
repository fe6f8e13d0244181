"""Process logging: level and text/JSON format from ``config.logging``."""

from __future__ import annotations

import logging
import sys
import time

import orjson

_LEVELS = {
    "trace": logging.DEBUG,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "off": logging.CRITICAL + 10,
}


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        d = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "scope": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            d["error"] = self.formatException(record.exc_info)
        return orjson.dumps(d).decode()


def configure_logging(level: str = "info", fmt: str = "text") -> None:
    # agentgateway accepts RUST_LOG-like filters ("info,agentgateway=debug"): take the
    # first bare level.
    lvl = _LEVELS.get(level.split(",")[0].strip().lower(), logging.INFO)
    root = logging.getLogger()
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.handlers[:] = [handler]
    root.setLevel(lvl)
