#!/usr/bin/env bash
# Everything the test suite needs, on a fresh Debian machine with Python 3.11+.
set -euo pipefail
PY=${PYTHON:-python3}
$PY -m pip install -q -e '.[test]'
