"""The UI's shipped assets: exactly what ``make ui`` builds from ui/ (its sources and
the versions of its package-lock.json), and served by the admin listener with a policy
that lets the page load nothing from anywhere else."""

from __future__ import annotations

import shutil
import subprocess

import httpx
import pytest

from tests.support.harness import REPO_ROOT


def test_the_shipped_assets_are_a_fresh_build():
    esbuild = REPO_ROOT / "ui" / "node_modules" / ".bin" / "esbuild"
    if shutil.which("node") is None or not esbuild.exists():
        pytest.skip("needs node and ui/node_modules (npm ci --prefix ui)")
    r = subprocess.run(["node", "ui/build.mjs", "--check"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "match a fresh build" in r.stdout


def test_served_with_a_strict_policy(ui):
    r = httpx.get(ui.gateway.admin_url + "/ui", follow_redirects=False)
    assert r.status_code == 308 and r.headers["location"] == "/ui/"
    r = httpx.get(ui.ui_url)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert '<script type="module" src="app.js">' in r.text
    js = httpx.get(ui.ui_url + "app.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    again = httpx.get(ui.ui_url + "app.js", headers={"if-none-match": js.headers["etag"]})
    assert again.status_code == 304
    assert httpx.get(ui.ui_url + "nope.js").status_code == 404
    # only on the admin address
    stats = f"http://{ui.gateway.stats_addr[0]}:{ui.gateway.stats_addr[1]}/ui/"
    assert httpx.get(stats).status_code == 404


def test_the_page_loads_and_every_view_opens(ui, page):
    from playwright.sync_api import expect  # (the page fixture has it installed)

    page.goto(ui.ui_url)
    page.get_by_role("navigation", name="Views").wait_for()
    for name in ("Overview", "MCP", "A2A", "LLM", "CEL", "Config", "Requests"):
        page.get_by_role("link", name=name, exact=True).click()
        # (the view renders after the click: wait for it, as a user would)
        expect(page.get_by_role("link", name=name, exact=True)).to_have_attribute("aria-current", "page")
