"""The web UI's overview, requests, config editor and CEL playground in a real browser,
against a real gateway running the quickstart: each test does what a user would and
asserts what the page shows (and, for the config editor, what the gateway then does)."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest

from tests.support.harness import wait_for
from tests.ui.conftest import start_stack

expect = pytest.importorskip("playwright.sync_api").expect


def _drop_expected_problems(page, *needles: str) -> None:
    """The browser logs a failed fetch (a 4xx / 5xx answer) as a console error; a test
    that provokes one takes it out of the list the fixture checks."""
    page.problems[:] = [p for p in page.problems if not any(n in p for n in needles)]


# --------------------------------------------------------------------------- overview


def test_overview_shows_the_topology_with_live_counts(ui, page):
    page.goto(ui.ui_url + "#/overview")
    expect(page.get_by_role("heading", name="Overview", level=1)).to_be_visible()
    kinds = {"mcp": "mcp", "a2a": "a2a", "hello": "direct", "echo": "http", "llm": "llm"}
    for key, kind in kinds.items():
        row = page.locator(f'tr[data-route="{key}"]')
        expect(row).to_be_visible()
        expect(row.get_by_role("rowheader")).to_contain_text(kind)
    # the binds, both ports
    expect(page.get_by_role("heading", name=re.compile(rf"Bind :{ui.port}\b"))).to_be_visible()
    expect(page.get_by_role("heading", name=re.compile(rf"Bind :{ui.llm_port}\b"))).to_be_visible()
    # paths, policies and backends of the quickstart's routes
    echo = page.locator('tr[data-route="echo"]')
    expect(echo).to_contain_text("/echo")
    expect(echo).to_contain_text("/sse")
    for policy in ("cors", "localRateLimit", "requestHeaderModifier"):
        expect(echo).to_contain_text(policy)
    mcp = page.locator('tr[data-route="mcp"]')
    for target in ("weather", "math", "notes"):
        expect(mcp).to_contain_text(target)
    expect(page.locator('tr[data-route="llm"]')).to_contain_text("demo")
    expect(page.locator('tr[data-route="hello"]')).to_contain_text("directResponse")

    # the page has read the metrics once; now some traffic
    expect(page.locator(".ov-head")).to_contain_text("updated")
    before = next(
        (r["requests"] for r in httpx.get(ui.api_url + "/metrics/summary").json()["routes"] if r["route"] == "hello"),
        0,
    )
    n = 7
    with httpx.Client() as c:
        for _ in range(n):
            assert c.get(ui.gateway.url + "/hello").status_code == 200
    hello = page.locator('tr[data-route="hello"]')
    # a rate above zero shows while the requests are in the last 2 s window
    expect(hello.locator('td[data-label="rate"]')).to_have_text(re.compile(r"^(?!0/s$)\d+(\.\d+)?/s$"))
    expect(hello.locator('td[data-label="requests"]')).to_have_text(str(before + n))
    expect(hello.locator('td[data-label="errors"]')).to_have_text("0")
    expect(hello.locator('td[data-label="latency"]')).to_contain_text("ms")
    # echo's backend was used: its health badge says so
    assert httpx.get(ui.gateway.url + "/echo/health").status_code == 200
    expect(echo.get_by_text("healthy", exact=True)).to_be_visible()


def test_overview_shows_an_api_error(ui, page):
    page.route(
        "**/api/v1/topology",
        lambda route: route.fulfill(status=500, json={"error": "the topology is on fire"}),
    )
    page.goto(ui.ui_url + "#/overview")
    alert = page.get_by_role("alert").filter(has_text="topology")
    expect(alert).to_contain_text("the topology is on fire")
    expect(alert).to_contain_text("500")
    _drop_expected_problems(page, "status of 500")


# --------------------------------------------------------------------------- requests


def test_requests_lists_recent_requests_and_filters(ui, page):
    tag = uuid.uuid4().hex[:10]
    with httpx.Client() as c:
        assert c.get(f"{ui.gateway.url}/echo/recent-{tag}").status_code == 200
        assert c.get(f"{ui.gateway.url}/missing-{tag}").status_code == 404
    page.goto(ui.ui_url + "#/requests")
    expect(page.get_by_role("heading", name="Requests", level=1)).to_be_visible()
    table = page.get_by_role("table")
    row = table.get_by_role("row").filter(has_text=f"/echo/recent-{tag}")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("echo")
    expect(row).to_contain_text("GET")
    expect(row).to_contain_text("200")
    expect(table.get_by_role("row").filter(has_text=f"/missing-{tag}")).to_contain_text("404")

    # text filter: only this test's two requests
    page.get_by_label("Search").fill(tag)
    expect(table.locator("tbody tr")).to_have_count(2)
    # status filter: only the 404
    page.get_by_label("Status").fill("4xx")
    expect(table.locator("tbody tr")).to_have_count(1)
    expect(table.locator("tbody tr")).to_contain_text(f"/missing-{tag}")
    # a bad status is explained, not sent
    page.get_by_label("Status").fill("abc")
    expect(page.get_by_text("Status: a code (404) or a class (5xx).")).to_be_visible()
    page.get_by_label("Status").fill("")
    # route filter
    page.get_by_label("Route").fill("echo")
    expect(table.locator("tbody tr")).to_have_count(1)
    expect(table.locator("tbody tr")).to_contain_text(f"/echo/recent-{tag}")


def test_requests_live_tail(ui, page):
    page.goto(ui.ui_url + "#/requests")
    expect(page.get_by_role("heading", name="Requests", level=1)).to_be_visible()
    page.get_by_label("Live").check()
    expect(page.get_by_role("status").filter(has_text="tail live")).to_be_visible()
    tag = uuid.uuid4().hex[:10]
    assert httpx.get(f"{ui.gateway.url}/echo/live-{tag}").status_code == 200
    row = page.get_by_role("table").get_by_role("row").filter(has_text=f"/echo/live-{tag}")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("200")
    # newest first
    expect(page.locator("tbody tr").first).to_contain_text(f"/echo/live-{tag}")
    # off: no more rows arrive
    page.get_by_label("Live").uncheck()
    expect(page.get_by_role("status").filter(has_text="tail live")).to_have_count(0)
    tag2 = uuid.uuid4().hex[:10]
    assert httpx.get(f"{ui.gateway.url}/echo/off-{tag2}").status_code == 200
    # once the gateway has it (a live tail would have shown it by now), the page has not
    wait_for(
        lambda: any(r["path"] == f"/echo/off-{tag2}" for r in httpx.get(ui.api_url + "/requests").json()["requests"]),
        message="the request in the gateway's recent requests",
    )
    page.wait_for_timeout(1000)
    assert page.get_by_text(f"/echo/off-{tag2}").count() == 0
    page.get_by_role("button", name="Refresh").click()
    expect(page.locator("tbody tr").first).to_contain_text(f"/echo/off-{tag2}")
    # leaving the view ends the stream (and an aborted fetch is no console error)
    page.get_by_label("Live").check()
    expect(page.get_by_role("status").filter(has_text="tail live")).to_be_visible()
    page.get_by_role("link", name="Overview", exact=True).click()
    expect(page.get_by_role("heading", name="Overview", level=1)).to_be_visible()


# --------------------------------------------------------------------------- config


def _editor(page):
    return page.get_by_role("textbox", name=re.compile("Config document"))


def _line_of(text: str, needle: str) -> int:
    return text[: text.index(needle)].count("\n") + 1


def test_config_editor_validates_as_you_type(ui, page):
    original = ui.gateway.config_path.read_text()
    page.goto(ui.ui_url + "#/config")
    editor = _editor(page)
    expect(editor).to_have_value(original)
    expect(page.get_by_text(str(ui.gateway.config_path))).to_be_visible()
    expect(page.get_by_role("status").filter(has_text="Valid")).to_be_visible()
    apply = page.get_by_role("button", name="Apply")
    revert = page.get_by_role("button", name="Revert")
    expect(apply).to_be_disabled()  # unchanged
    expect(revert).to_be_disabled()

    # an unknown field: the error names it, at its line, marked in the gutter
    broken = original.replace("directResponse:", "directResponze:")
    line = _line_of(broken, "directResponze:")
    editor.fill(broken)
    error = page.get_by_role("button", name=re.compile(rf"line {line}\b.*directResponze"))
    expect(error).to_be_visible()
    expect(page.locator(f'.cfg-ln.bad[data-line="{line}"]')).to_be_visible()
    expect(page.get_by_role("status").filter(has_text="1 error")).to_be_visible()
    expect(apply).to_be_disabled()
    expect(revert).to_be_enabled()
    # clicking the error puts the cursor on its line
    editor.evaluate("ta => ta.setSelectionRange(0, 0)")
    error.click()
    expect(editor).to_be_focused()
    cursor_line = editor.evaluate("ta => ta.value.slice(0, ta.selectionStart).split('\\n').length")
    assert cursor_line == line

    # a YAML syntax error: at the line the parser stopped
    syntax = original.replace("  listeners:\n", "  listeners: [\n", 1)
    editor.fill(syntax)
    expect(page.get_by_role("button", name=re.compile(r"line \d+.*\(root\)"))).to_be_visible()
    expect(page.locator(".cfg-ln.bad")).not_to_have_count(0)
    expect(apply).to_be_disabled()

    # a valid change enables Apply; Revert brings the file's text back
    editor.fill(original.replace("hello from agentgw", "hello, edited"))
    expect(page.get_by_role("status").filter(has_text="Valid")).to_be_visible()
    expect(page.locator(".cfg-ln.bad")).to_have_count(0)
    expect(apply).to_be_enabled()
    revert.click()
    expect(editor).to_have_value(original)
    expect(apply).to_be_disabled()
    # nothing was written
    assert ui.gateway.config_path.read_text() == original


@pytest.fixture(scope="module")
def own(tmp_path_factory):
    """A stack of this module's own for the tests that change the config."""
    stack, helpers = start_stack(tmp_path_factory.mktemp("ui-config"))
    try:
        yield stack
    finally:
        stack.gateway.stop()
        for h in helpers:
            h.stop()
        assert not stack.gateway.has_traceback(), stack.gateway.logs()


def test_config_editor_applies_a_change(own, page):
    original = own.gateway.config_path.read_text()
    assert httpx.get(own.gateway.url + "/hello").text == "hello from agentgw\n"
    page.goto(own.ui_url + "#/config")
    editor = _editor(page)
    expect(editor).to_have_value(original)
    changed = original.replace("hello from agentgw", "hello from the config editor")
    editor.fill(changed)
    expect(page.get_by_text("modified", exact=True)).to_be_visible()
    expect(page.get_by_role("status").filter(has_text="Valid")).to_be_visible()
    page.get_by_role("button", name="Apply").click()
    expect(page.get_by_text("Applied: the new config is serving.")).to_be_visible()
    assert httpx.get(own.gateway.url + "/hello").text == "hello from the config editor\n"
    assert own.gateway.config_path.read_text() == changed
    # the file was read again: unchanged now
    expect(editor).to_have_value(changed)
    expect(page.get_by_role("button", name="Apply")).to_be_disabled()
    expect(page.get_by_text("modified", exact=True)).to_have_count(0)

    # Ctrl+S applies too (back to the original)
    editor.fill(original)
    expect(page.get_by_role("status").filter(has_text="Valid")).to_be_visible()
    editor.press("Control+s")
    expect(page.get_by_text("Applied: the new config is serving.")).to_be_visible()
    expect(page.get_by_role("button", name="Apply")).to_be_disabled()
    assert httpx.get(own.gateway.url + "/hello").text == "hello from agentgw\n"
    assert own.gateway.config_path.read_text() == original


def test_config_editor_shows_a_refused_apply(own, page):
    """The server validates again on PUT: its 422 errors show (here the page's own
    validation is made to say "valid", as it could be a moment before the PUT)."""
    original = own.gateway.config_path.read_text()
    page.route(
        "**/api/v1/config/validate",
        lambda route: route.fulfill(status=200, json={"valid": True, "errors": []}),
    )
    page.goto(own.ui_url + "#/config")
    editor = _editor(page)
    expect(editor).to_have_value(original)
    broken = original.replace("directResponse:", "directResponze:")
    editor.fill(broken)
    expect(page.get_by_role("status").filter(has_text="Valid")).to_be_visible()
    page.get_by_role("button", name="Apply").click()
    expect(page.get_by_role("alert")).to_contain_text("Not applied: the config is invalid")
    line = _line_of(broken, "directResponze:")
    expect(page.get_by_role("button", name=re.compile(rf"line {line}\b.*directResponze"))).to_be_visible()
    assert own.gateway.config_path.read_text() == original
    assert httpx.get(own.gateway.url + "/hello").text == "hello from agentgw\n"
    _drop_expected_problems(page, "status of 422")


def test_config_editor_shows_a_valid_but_unapplied_change(ui, page):
    """409: valid, not applied (a change only a restart applies); the reason shows and the
    edit stays in the editor. (The PUT is answered by the page's test double: the
    quickstart has no such change to make safely.)"""
    original = ui.gateway.config_path.read_text()
    page.route(
        "**/api/v1/config",
        lambda route: (
            route.fulfill(
                status=409,
                json={"error": "the config is valid but could not be applied: port 1 is in use", "valid": True},
            )
            if route.request.method == "PUT"
            else route.continue_()
        ),
    )
    page.goto(ui.ui_url + "#/config")
    editor = _editor(page)
    expect(editor).to_have_value(original)
    edited = original.replace("hello from agentgw", "hello, not applied")
    editor.fill(edited)
    expect(page.get_by_role("status").filter(has_text="Valid")).to_be_visible()
    page.get_by_role("button", name="Apply").click()
    expect(page.get_by_role("alert")).to_contain_text(
        "Valid, but not applied: the config is valid but could not be applied: port 1 is in use"
    )
    expect(editor).to_have_value(edited)
    expect(page.get_by_role("button", name="Apply")).to_be_enabled()
    assert ui.gateway.config_path.read_text() == original
    _drop_expected_problems(page, "status of 409")


@pytest.fixture(scope="module")
def locked(tmp_path_factory):
    """A stack whose admin API needs a token."""
    token = "ui-views-test-token-" + uuid.uuid4().hex
    stack, helpers = start_stack(tmp_path_factory.mktemp("ui-locked"), admin={"token": token})
    stack.token = token  # type: ignore[attr-defined]
    try:
        yield stack
    finally:
        stack.gateway.stop()
        for h in helpers:
            h.stop()
        assert not stack.gateway.has_traceback(), stack.gateway.logs()


def test_config_editor_asks_for_the_credential(locked, page):
    page.goto(locked.ui_url + "#/config")
    dialog = page.get_by_role("dialog", name="Sign in to the admin API")
    expect(dialog).to_be_visible()
    expect(page.get_by_role("alert").filter(has_text="Cannot read the config file")).to_contain_text("admin credential")
    expect(page.get_by_role("button", name="Retry")).to_be_visible()
    dialog.get_by_label("Admin token").fill(locked.token)
    dialog.get_by_role("button", name="Sign in").click()
    expect(dialog).to_have_count(0)
    # signed in: the file is read again by itself
    expect(_editor(page)).to_have_value(locked.gateway.config_path.read_text())
    expect(page.get_by_role("status").filter(has_text="Valid")).to_be_visible()
    _drop_expected_problems(page, "status of 401")


# --------------------------------------------------------------------------- CEL


def test_cel_playground(ui, page):
    page.goto(ui.ui_url + "#/cel")
    expect(page.get_by_role("heading", name="CEL playground", level=1)).to_be_visible()
    answer = page.locator(".cel-answer")

    # an example, over the sample request (x-team: blue)
    page.get_by_role("button", name='request.headers["x-team"] == "blue"').click()
    expect(page.get_by_label("Expression", exact=True)).to_have_value('request.headers["x-team"] == "blue"')
    expect(answer.get_by_role("heading", name="Result")).to_be_visible()
    expect(answer.locator("pre")).to_have_text("true")
    expect(answer).to_contain_text("type bool", ignore_case=True)

    # other variables: jwt
    page.get_by_label("Expression", exact=True).fill('jwt.sub == "alice" && request.method == "POST"')
    page.get_by_role("button", name="Evaluate", exact=True).click()
    expect(answer.locator("pre")).to_have_text("true")
    page.get_by_label(re.compile("^Other variables")).fill('{"jwt": {"sub": "bob"}}')
    page.get_by_label("Expression", exact=True).press("Control+Enter")
    expect(answer.locator("pre")).to_have_text("false")

    # the request's fields
    page.get_by_label("Method", exact=True).select_option("GET")
    page.get_by_label("Path", exact=True).fill("/a2a/tasks")
    page.get_by_label(re.compile("^Headers")).fill("x-team: red\nx-trace: 1")
    page.get_by_label("Expression", exact=True).fill(
        'request.path + " " + request.method + " " + request.headers["x-team"]'
    )
    page.get_by_label("Expression", exact=True).press("Control+Enter")
    expect(answer.locator("pre")).to_have_text('"/a2a/tasks GET red"')
    expect(answer).to_contain_text("type string", ignore_case=True)

    # a compile error, with its phase
    page.get_by_label("Expression", exact=True).fill("request.method ==")
    page.get_by_role("button", name="Evaluate", exact=True).click()
    expect(answer.get_by_role("heading", name="Compile error")).to_be_visible()
    expect(answer.locator("pre.error")).not_to_be_empty()
    # an undeclared variable is a compile error too; a missing key an evaluation error
    page.get_by_label("Expression", exact=True).fill('request.headers["nope"] == "x"')
    page.get_by_role("button", name="Evaluate", exact=True).click()
    expect(answer.get_by_role("heading", name="Evaluation error")).to_be_visible()

    # bad input is explained without a round trip
    page.get_by_label(re.compile("^Other variables")).fill("{not json")
    page.get_by_role("button", name="Evaluate", exact=True).click()
    expect(answer).to_contain_text("Other variables: not JSON")


def test_views_use_real_headings_and_labels(ui, page):
    """Keyboard and screen-reader basics: one h1 per view, every input labelled."""
    for view in ("overview", "requests", "config", "cel"):
        page.goto(ui.ui_url + f"#/{view}")
        expect(page.locator("main h1")).to_have_count(1)
        if view == "config":
            expect(_editor(page)).to_be_visible()
        unlabelled = page.evaluate(
            """() => [...document.querySelectorAll('main input, main textarea, main select')]
                 .filter(el => !el.labels || el.labels.length === 0)
                 .map(el => el.outerHTML)"""
        )
        assert unlabelled == [], unlabelled


def test_overview_waits_for_the_credential(locked, page):
    """With config.admin.token, reads need it too: the overview asks once, stops polling
    while the dialog is dismissed, and shows the topology once signed in."""
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if "/api/v1/topology" in r.url else None)
    page.clock.install()
    page.goto(locked.ui_url + "#/overview")
    dialog = page.get_by_role("dialog", name="Sign in to the admin API")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Cancel").click()
    expect(page.get_by_role("alert").filter(has_text="needs the admin credential")).to_be_visible()
    page.clock.run_for(10_000)  # five poll periods
    assert len(asked) == 1, asked  # no poll between the 401 and signing in
    page.get_by_role("button", name="Sign in").click()
    dialog.get_by_label("Admin token").fill(locked.token)
    dialog.get_by_role("button", name="Sign in").click()
    expect(dialog).to_have_count(0)
    expect(page.locator('tr[data-route="hello"]')).to_be_visible()
    expect(page.get_by_role("alert")).to_have_count(0)
    _drop_expected_problems(page, "status of 401")
