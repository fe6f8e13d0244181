"""Shared fixtures: real upstream and gateway processes on 127.0.0.1."""

from __future__ import annotations

import shutil

import pytest

from tests.support.harness import Harness, TLSFiles, make_tls_files
from tests.support.redis_server import RedisServer

DATAPLANE_TEST_TIMEOUT = 60

# Third-party suites kept under tests/vendor (the A2A TCK's own pytest tests) are run by the
# tests that use them, as subprocesses with their own configuration, never collected here.
collect_ignore = ["vendor"]


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "dataplane" in str(item.fspath) and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(DATAPLANE_TEST_TIMEOUT))


def _close(h: Harness) -> None:
    problems = h.close()
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


@pytest.fixture
def harness(tmp_path) -> Harness:
    """Function-scoped process owner: ``harness.upstream(...)``, ``harness.gateway(cfg)``."""
    h = Harness(tmp_path)
    yield h
    _close(h)


@pytest.fixture(scope="module")
def module_harness(tmp_path_factory, request) -> Harness:
    """Module-scoped process owner, for gateways shared by a whole test module."""
    h = Harness(tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1]))
    yield h
    _close(h)


@pytest.fixture
def make_upstream(harness):
    """Factory: ``make_upstream(name=None, nports=1, tls=None) -> Upstream``."""
    return harness.upstream


@pytest.fixture
def make_gateway(harness):
    """Factory: ``make_gateway(config, workers=None, extra_args=(), wait_ready=True) -> Gateway``."""
    return harness.gateway


@pytest.fixture
def upstream(harness):
    """One running upstream (function scope)."""
    return harness.upstream("up")


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory) -> TLSFiles:
    """trustme CA + server certificate for localhost / 127.0.0.1 / *.example.com."""
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def redis_server(tmp_path):
    """A real ``redis-server`` on 127.0.0.1, killed after the test."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (scripts/install-test-deps.sh installs it)")
    r = RedisServer(tmp_path)
    r.start()
    yield r
    r.kill()
