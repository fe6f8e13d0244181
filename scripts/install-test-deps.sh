#!/usr/bin/env bash
# Everything the test suite needs, on a fresh Debian machine with Python 3.11+.
set -euo pipefail
PY=${PYTHON:-python3}
$PY -m pip install -q -e '.[test]'
# The A2A tests also run an agent on a2a-sdk 0.3 (the older card and method names),
# which cannot share an environment with a2a-sdk 1.x: give it its own virtualenv.
A2A03=.venvs/a2a03
if ! "$A2A03/bin/python" -c 'import a2a, uvicorn' 2>/dev/null; then
    $PY -m venv "$A2A03"
    "$A2A03/bin/python" -m pip install -q 'a2a-sdk[http-server]==0.3.26' 'uvicorn==0.54.0'
fi
# Apache's htpasswd (apache2-utils) makes the htpasswd files the basicAuth tests check.
if ! command -v htpasswd >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get install -y -q apache2-utils >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q apache2-utils >/dev/null 2>&1; }) \
      || echo "warning: could not install apache2-utils; the htpasswd test will be skipped" >&2
  else
    echo "note: htpasswd not found (apt-get install apache2-utils); the htpasswd test will be skipped" >&2
  fi
fi
# MCP interop tests: the reference server and the Inspector CLI, project-local.
if command -v npm >/dev/null 2>&1; then
  npm install --silent --no-audit --no-fund --prefix .cache/npm \
    @modelcontextprotocol/server-everything@2026.8.31 @modelcontextprotocol/inspector@0.21.0 >/dev/null 2>&1 \
    || echo "warning: npm install of the MCP test servers failed; those tests will be skipped" >&2
fi
