"""Standalone config file: models, loading and redacted dumps.

The file format is agentgateway's standalone config schema; see
``docs/config-reference.md``.  Typical use::

    cfg = load_config_file("config.yaml")   # raises ConfigError
    limits = effective_limits(cfg)
    admin_view = redacted_dump(cfg)
"""

from .durations import Duration, parse_duration
from .loader import ConfigError, SourceMap, format_path, load_config_file, load_config_text, read_config_file
from .models import SECRET, EffectiveLimits, LocalConfig, effective_limits
from .redact import REDACTED, redacted_dump

__all__ = [
    "REDACTED",
    "SECRET",
    "ConfigError",
    "Duration",
    "EffectiveLimits",
    "LocalConfig",
    "SourceMap",
    "effective_limits",
    "format_path",
    "load_config_file",
    "load_config_text",
    "parse_duration",
    "read_config_file",
    "redacted_dump",
]
