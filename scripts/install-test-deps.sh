#!/usr/bin/env bash
# Everything the test suite needs, on a fresh Debian machine with Python 3.11+.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
PY=${PYTHON:-python3}
$PY -m pip install -q -e '.[test]'
# The A2A tests also run an agent on a2a-sdk 0.3 (the older card and method names),
# which cannot share an environment with a2a-sdk 1.x: give it its own virtualenv.
A2A03=.venvs/a2a03
if ! "$A2A03/bin/python" -c 'import a2a, uvicorn' 2>/dev/null; then
    $PY -m venv "$A2A03"
    "$A2A03/bin/python" -m pip install -q 'a2a-sdk[http-server]==0.3.26' 'uvicorn==0.54.0'
fi
# The A2A TCK (vendored in tests/vendor/a2a-tck, run by tests/a2a/test_tck.py) in its own
# virtualenv, at the versions of its uv.lock (its pytest must not meet our plugins, and its
# protobuf 6 our protobuf 7). Not installed: pytest-html (run_tck.py's HTML report; the test
# reads JUnit XML) and the code generator's gherkin-official and Jinja2.
TCK=.venvs/a2a-tck
if ! "$TCK/bin/python" -c 'import pytest, pytest_asyncio, httpx, grpc, google.protobuf, google.rpc, jsonschema' 2>/dev/null; then
    $PY -m venv "$TCK"
    "$TCK/bin/python" -m pip install -q 'pytest==9.0.2' 'pytest-asyncio==1.3.0' 'httpx==0.28.1' \
      'grpcio==1.78.0' 'protobuf==6.33.5' 'googleapis-common-protos==1.72.0' 'jsonschema==4.26.0'
fi
# Scale-out and observability tests: a real redis-server (global rate limits) and
# Prometheus (promtool check metrics, a real scrape), both from Debian packages.
apt_install() {  # apt_install COMMAND PACKAGE
  command -v "$1" >/dev/null 2>&1 && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    (apt-get install -y -q --no-install-recommends "$2" >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q --no-install-recommends "$2" >/dev/null 2>&1; }) \
      || echo "warning: could not install $2; the tests that need $1 will be skipped" >&2
  else
    echo "note: $1 not found (apt-get install $2); the tests that need it will be skipped" >&2
  fi
}
apt_install redis-server redis-server
apt_install promtool prometheus
# Apache's htpasswd makes the htpasswd files the basicAuth tests check.
apt_install htpasswd apache2-utils
# Kubernetes tests render deploy/kubernetes with kubectl's built-in kustomize.
apt_install kubectl kubernetes-client
# The security differential tests put agentgw in front of a real nginx.
apt_install nginx nginx-light
# The request log database tests write to a real PostgreSQL (Debian keeps its programs
# under /usr/lib/postgresql/<version>/bin, off PATH).
pg_installed() { command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; }
pg_installed || apt_install /usr/lib/postgresql/15/bin/initdb postgresql
# The web UI's tests: Debian's Chromium, driven by Playwright (tests/ui). The UI's own
# build tools (esbuild, at ui/package-lock.json's versions), to check that the shipped
# assets are what the sources make (tests/ui/test_assets.py).
apt_install chromium chromium
if command -v npm >/dev/null 2>&1; then
  npm ci --silent --no-audit --no-fund --prefix ui >/dev/null 2>&1 \
    || echo "warning: npm ci in ui/ failed; the UI build check will be skipped" >&2
fi
# MCP interop tests: the reference server and the Inspector CLI, project-local; and
# oidc-provider, a certified OpenID provider, as the real authorization server of the
# OAuth tests. The MCP conformance test (tests/mcp/test_conformance.py): the runner, and
# what the vendored everything-server (tests/vendor/mcp-conformance, run with tsx) imports,
# at the versions of its package-lock.json at conformance v0.1.16.
if command -v npm >/dev/null 2>&1; then
  npm install --silent --no-audit --no-fund --prefix .cache/npm \
    @modelcontextprotocol/server-everything@2026.8.31 @modelcontextprotocol/inspector@0.21.0 \
    oidc-provider@9.13.3 \
    @modelcontextprotocol/conformance@0.1.16 tsx@4.21.0 \
    @modelcontextprotocol/sdk@1.27.1 express@5.2.1 cors@2.8.6 zod@4.3.6 >/dev/null 2>&1 \
    || echo "warning: npm install of the MCP test servers failed; those tests will be skipped" >&2
fi
# SigV4 test vectors (AWS's aws4_testsuite) ship in the botocore sdist, not the wheel:
# fetch the sdist of the installed botocore once and keep only that directory.
BOTOCORE_VERSION=$($PY -c 'import botocore; print(botocore.__version__)')
AWS4_DIR=.cache/aws4_testsuite/botocore-$BOTOCORE_VERSION
if [ ! -f "$AWS4_DIR/get-vanilla/get-vanilla.authz" ]; then
  AWS4_TMP=$(mktemp -d)
  if $PY -m pip download -q --no-deps --no-binary :all: "botocore==$BOTOCORE_VERSION" -d "$AWS4_TMP" >/dev/null 2>&1 \
     && tar -xzf "$AWS4_TMP/botocore-$BOTOCORE_VERSION.tar.gz" -C "$AWS4_TMP" "botocore-$BOTOCORE_VERSION/tests/unit/auth/aws4_testsuite"; then
    mkdir -p "$AWS4_DIR"
    cp -R "$AWS4_TMP/botocore-$BOTOCORE_VERSION/tests/unit/auth/aws4_testsuite/." "$AWS4_DIR/"
  else
    echo "warning: could not fetch the botocore sdist; the SigV4 test-vector tests will be skipped" >&2
  fi
  rm -rf "$AWS4_TMP"
fi

# Locally a missing tool only skips the tests that need it; in CI it is an error, so a
# broken install can't pass as a green run with skipped tests.
if [ -n "${CI:-}" ]; then
  missing=()
  for cmd in htpasswd redis-server promtool prometheus kubectl node nginx chromium; do
    command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
  done
  pg_installed || missing+=("postgresql")
  [ -d .cache/npm/node_modules/@modelcontextprotocol/server-everything ] || missing+=("npm:server-everything")
  [ -d .cache/npm/node_modules/@modelcontextprotocol/inspector ] || missing+=("npm:inspector")
  [ -d .cache/npm/node_modules/@modelcontextprotocol/conformance ] || missing+=("npm:conformance")
  [ -x .cache/npm/node_modules/.bin/tsx ] || missing+=("npm:tsx")
  [ -x ui/node_modules/.bin/esbuild ] || missing+=("npm:ui (esbuild)")
  [ -f "$AWS4_DIR/get-vanilla/get-vanilla.authz" ] || missing+=("aws4_testsuite")
  "$A2A03/bin/python" -c 'import a2a' 2>/dev/null || missing+=("a2a-sdk 0.3 venv")
  "$TCK/bin/python" -c 'import pytest, httpx, grpc, jsonschema' 2>/dev/null || missing+=("A2A TCK venv")
  if [ ${#missing[@]} -gt 0 ]; then
    echo "error: test dependencies missing in CI: ${missing[*]}" >&2
    exit 1
  fi
fi
