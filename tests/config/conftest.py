"""Make ``agentgw`` importable from the src layout when it is not installed."""

import sys
from pathlib import Path

try:
    import agentgw  # noqa: F401
except ImportError:  # pragma: no cover - depends on how tests are run
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
