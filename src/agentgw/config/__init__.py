"""Standalone config file: models, loading and redacted dumps.

The file format is agentgateway's standalone config schema; see
``docs/config-reference.md``.  Typical use::

    cfg = load_config_file("config.yaml")   # raises ConfigError
    limits = effective_limits(cfg)
    admin_view = redacted_dump(cfg)
"""

from .durations import Duration, parse_duration
from .loader import ConfigError, format_path, load_config_file, load_config_text
from .models import SECRET, EffectiveLimits, LocalConfig, effective_limits
from .redact import REDACTED, redacted_dump

__all__ = [
    "REDACTED",
    "SECRET",
    "ConfigError",
    "Duration",
    "EffectiveLimits",
    "LocalConfig",
    "effective_limits",
    "format_path",
    "load_config_file",
    "load_config_text",
    "parse_duration",
    "redacted_dump",
]
