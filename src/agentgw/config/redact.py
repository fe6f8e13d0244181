"""Config dump with credentials removed, for the admin API and debug logs.

The dump uses the file's key names and includes defaults (so it shows the
configuration agentgw is actually running with) but omits unset optional
fields (``None``), which keeps it close to what the user wrote.

Secrets are found two ways:

* fields annotated ``SECRET`` in the models (session key, API keys, htpasswd,
  backend auth keys, AWS/GCP/Azure credentials, tracing headers, LLM
  ``apiKey``, stdio ``env``, TLS private keys, ...) -- authoritative;
* as a backstop, inside free-form maps (header maps, ``metadata``, and the
  permissive ``dict`` sections listed in `agentgw.config.models`), any entry
  whose key looks like a credential (``*key``, secret, password, token,
  credential, authorization, cookie, ...) is redacted, value and all.
"""

from __future__ import annotations

import re
from enum import Enum
from typing import Any

from pydantic import BaseModel

from .durations import Duration
from .models import SECRET, LocalConfig

__all__ = ["REDACTED", "redacted_dump", "redacted_model_dump"]

REDACTED = "<redacted>"

_SECRET_WORDS = (
    "secret",
    "passw",
    "credential",
    "authorization",
    "cookie",
    "htpasswd",
    "apikey",
    "api_key",
    "api-key",
    "private",
)
_TOKEN = re.compile(r"token(?!s\b|s_|ize)", re.IGNORECASE)


def _secretish(key: str) -> bool:
    """Whether a free-form map key looks like it names a credential."""
    lk = key.lower()
    if any(w in lk for w in _SECRET_WORDS) or _TOKEN.search(key):
        return True
    return lk == "key" or lk.endswith(("_key", "-key")) or key.endswith("Key") or "KeyId" in key


def redacted_dump(cfg: LocalConfig) -> dict[str, Any]:
    """The config as a JSON-able dict in YAML key names, with every secret replaced by ``<redacted>``."""
    return redacted_model_dump(cfg)


def redacted_model_dump(model: BaseModel) -> dict[str, Any]:
    """`redacted_dump` for any config sub-model."""
    out: dict[str, Any] = {}
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        if value is None:
            continue
        key = field.alias or name
        if any(m is SECRET for m in field.metadata):
            out[key] = _redact_whole(value)
        else:
            out[key] = _plain(value)
    return out


def _redact_whole(value: Any) -> Any:
    # Maps keep their keys (which header/env var is set is useful); values go.
    if isinstance(value, dict) and all(isinstance(v, (str, int, float, bool)) for v in value.values()):
        return {str(k): REDACTED for k in value}
    return REDACTED


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return redacted_model_dump(value)
    if isinstance(value, Duration):
        return value.raw
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): (REDACTED if _secretish(str(k)) else _plain(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
