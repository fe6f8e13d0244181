"""The MCP, A2A and LLM playgrounds in a real browser: each one does a real round trip
through the admin listener's relay into the quickstart's routes and its demo upstreams,
and the test checks what the user sees -- then, through the admin API's recent
requests, that the calls really went through the gateway's routes."""

from __future__ import annotations

import re

import httpx
from playwright.sync_api import expect


def _requests(ui, **params) -> list[dict]:
    r = httpx.get(ui.api_url + "/requests", params={"limit": 1000, **params})
    assert r.status_code == 200, r.text
    doc = r.json()
    return doc["requests"] if isinstance(doc, dict) else doc


def _open(ui, page, view: str) -> None:
    page.goto(ui.ui_url + "#/" + view)
    expect(page.get_by_role("link", name=view.upper(), exact=True)).to_have_attribute("aria-current", "page")


def test_mcp_playground_connects_lists_and_calls_a_tool(ui, page):
    _open(ui, page, "mcp")
    route = page.get_by_label("MCP route")
    expect(route).to_be_enabled()
    expect(route.locator("option:checked")).to_contain_text("/mcp")
    page.get_by_role("button", name="Connect", exact=True).click()
    expect(page.get_by_role("status")).to_have_text("Connected")
    server = page.get_by_role("definition").filter(has_text=re.compile(r"^\d{4}-\d{2}-\d{2}$"))
    expect(server).to_have_count(1)  # the negotiated protocol revision

    # the three federated demo servers' tools
    tools = page.get_by_role("region", name="Tools")
    for name in ("weather_get_forecast", "math_add", "math_multiply", "notes_add_note", "math_slow_count"):
        expect(tools.get_by_role("button", name=name, exact=True)).to_be_visible()

    # a tool called through the form generated from its input schema: its real result
    tools.get_by_role("button", name="math_add", exact=True).click()
    request = page.get_by_role("region", name="Request")
    request.get_by_label("a", exact=True).fill("19.5")
    request.get_by_label("b", exact=True).fill("22.5")
    request.get_by_role("button", name="Call tool").click()
    result = request.get_by_role("region", name="Result")
    expect(result.locator("pre").first).to_have_text(str(19.5 + 22.5))

    # progress notifications land in the log
    tools.get_by_role("button", name="math_slow_count", exact=True).click()
    request.get_by_label("n", exact=True).fill("3")
    request.get_by_role("button", name="Call tool").click()
    expect(result.locator("pre").first).to_have_text("counted to 3")
    log = page.get_by_role("log")
    expect(log.get_by_text("3/3")).to_be_visible()

    # a note written with a tool, then read back through the resource and the prompt
    tools.get_by_role("button", name="notes_add_note", exact=True).click()
    request.get_by_label("text", exact=True).fill("buy oat milk")
    request.get_by_role("button", name="Call tool").click()
    expect(result.locator("pre").first).to_have_text("1 note(s)")

    resources = page.get_by_role("region", name="Resources", exact=True)
    resources.get_by_role("button").first.click()
    request.get_by_role("button", name="Read resource").click()
    expect(result.get_by_text("buy oat milk", exact=True)).to_be_visible()

    prompts = page.get_by_role("region", name="Prompts")
    prompts.get_by_role("button", name=re.compile("summarize")).click()
    request.get_by_role("button", name="Get prompt").click()
    expect(result.get_by_text("Summarize: buy oat milk", exact=True)).to_be_visible()

    page.get_by_role("button", name="Disconnect").click()
    expect(page.get_by_role("status")).to_have_text("Not connected")
    expect(page.get_by_role("log").get_by_text("closed (DELETE)")).to_be_visible()

    seen = _requests(ui)
    called = {(r.get("mcp_target"), r["mcp_tool"]) for r in seen if r.get("mcp_tool")}
    assert {("math", "add"), ("math", "slow_count"), ("notes", "add_note")} <= called, called
    assert any(r.get("method") == "DELETE" for r in seen if "/mcp" in (r.get("path") or ""))


def test_mcp_playground_shows_a_failed_connect(ui, page):
    _open(ui, page, "mcp")
    route = page.get_by_label("MCP route")
    expect(route).to_be_enabled()
    route.select_option(label="Other (port and path)…")
    page.get_by_label("Port", exact=True).fill(str(ui.port))
    page.get_by_label("Path", exact=True).fill("/no-such-route")
    page.get_by_role("button", name="Connect", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text(re.compile(r"Could not connect: HTTP 404"))
    expect(page.get_by_role("status")).to_have_text("Not connected")
    page.problems.clear()  # the browser logs the failed request itself


def test_a2a_playground_shows_the_card_and_streams_a_task(ui, page):
    _open(ui, page, "a2a")
    route = page.get_by_label("A2A route")
    expect(route).to_be_enabled()
    expect(route.locator("option:checked")).to_contain_text("/a2a")
    page.get_by_role("button", name="Fetch agent card").click()
    card = page.get_by_role("region", name="Agent card")
    expect(card.get_by_role("heading", name="Hello World Agent")).to_be_visible()
    expect(
        card.get_by_text("agentgw demo agent Hello World Agent: says Hello World, echoes the rest", exact=True)
    ).to_be_visible()
    expect(card.get_by_text("Hello World", exact=True)).to_be_visible()  # the skill
    # the card names the gateway's address, not the agent's own
    expect(card.get_by_role("listitem").filter(has_text="JSONRPC").first).to_contain_text(
        re.compile(rf"//[^/]+:{ui.port}/a2a/")
    )

    page.get_by_label("Message text").fill("streaming through agentgw")
    page.get_by_role("button", name="Stream message").click()
    task = page.get_by_role("region", name="Task")
    states = task.get_by_role("list", name="Task states")
    expect(task.get_by_role("status", name="Task state")).to_have_text("completed")
    expect(states.get_by_role("listitem")).to_have_count(3)  # submitted → working → completed
    expect(states).to_contain_text("submitted")
    expect(states).to_contain_text("working")
    expect(task.get_by_text("Hello World Agent heard: streaming through agentgw")).to_be_visible()

    page.get_by_label("Message text").fill("hello")
    page.get_by_role("button", name="Send message").click()
    expect(task.get_by_text("Hello World", exact=True)).to_be_visible()
    expect(task.get_by_role("status", name="Task state")).to_have_text("completed")

    a2a = [r for r in _requests(ui) if r.get("route") == "a2a"]
    methods = {r.get("a2a_method") for r in a2a}
    # both calls went through the gateway's A2A route, read as A2A methods
    assert {"SendStreamingMessage", "SendMessage"} <= methods, methods


def test_llm_playground_streams_a_chat_and_shows_usage(ui, page):
    _open(ui, page, "llm")
    route = page.get_by_label("LLM route")
    expect(route).to_be_enabled()
    expect(route.locator("option:checked")).to_contain_text(str(ui.llm_port))
    expect(page.get_by_label("Model", exact=True)).to_have_value("demo")
    expect(page.get_by_label("Stream the answer")).to_be_checked()

    page.get_by_label("Your message").fill("the quick brown fox")
    page.get_by_role("button", name="Send", exact=True).click()
    chat = page.get_by_role("list", name="Messages")
    expect(chat.get_by_text("You said: the quick brown fox", exact=True)).to_be_visible()
    stats = page.get_by_role("region", name="Last reply")
    expect(stats.get_by_role("definition").nth(0)).to_have_text(re.compile(r"^\d+$"))  # prompt tokens
    expect(stats.get_by_role("definition").nth(1)).to_have_text(re.compile(r"^\d+$"))  # completion tokens
    expect(stats.get_by_role("definition").nth(2)).to_have_text(re.compile(r"^\d+ ms$|^\d+\.\d+ s$"))  # first token
    expect(stats.get_by_role("definition").nth(3)).to_have_text(re.compile(r"^\d+ ms$|^\d+\.\d+ s$"))  # total
    first_prompt_tokens = stats.get_by_role("definition").nth(0).inner_text()

    # a second turn, not streamed: the history goes with it
    page.get_by_label("Stream the answer").uncheck()
    page.get_by_label("Your message").fill("jumps over")
    page.get_by_label("Your message").press("Enter")
    expect(chat.get_by_text("You said: jumps over", exact=True)).to_be_visible()
    expect(chat.get_by_role("listitem")).to_have_count(4)  # 2 turns, a question and an answer each

    llm = [r for r in _requests(ui) if r.get("llm_model")]
    assert [r["backend"] for r in llm[:2]] == ["demo", "demo"], llm[:2]  # the model entry "demo"
    assert all(r["route"] == "llm" and r["status"] == 200 and r["path"] == "/v1/chat/completions" for r in llm[:2])
    # what the UI showed for the streamed turn is what the gateway counted
    assert llm[1]["input_tokens"] == int(first_prompt_tokens), (llm[1], first_prompt_tokens)
