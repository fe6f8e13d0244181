"""An MCPServer (the Python SDK's FastMCP) for the MCP gateway tests.

python -m tests.mcp.fast_server --name alpha [--http PORT | --sse PORT]   (default: stdio)
"""

from __future__ import annotations

import argparse
import os

from pydantic import BaseModel

from mcp.server.mcpserver import Context, MCPServer
from mcp_types import SamplingMessage, TextContent

p = argparse.ArgumentParser()
p.add_argument("--name", default="fast")
p.add_argument("--http", type=int, default=None)
p.add_argument("--sse", type=int, default=None)
args = p.parse_args()

server = MCPServer(args.name)
COUNTS: dict[str, int] = {}


@server.tool()
def echo(text: str) -> str:
    """Echo the text back, prefixed with the server name."""
    return f"{args.name}: {text}"


@server.tool()
async def echo_async(text: str) -> str:
    """Echo the text back, prefixed with the server name, without a worker thread (the
    SDK runs a plain ``def`` tool in its thread pool)."""
    return f"{args.name}: {text}"


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def execute_code(code: str) -> str:
    """Pretend to run code."""
    return f"ran {len(code)} chars"


@server.tool()
def header(name: str, ctx: Context) -> str:
    """The value of one request header as this server saw it."""
    return (ctx.headers or {}).get(name, "<none>")


@server.tool()
def pid() -> str:
    """This server process's pid."""
    return str(os.getpid())


@server.tool()
def bump(ctx: Context) -> int:
    """Per-upstream-session counter (shows the upstream session survives)."""
    key = (ctx.headers or {}).get("mcp-session-id") or str(id(ctx.session))
    COUNTS[key] = COUNTS.get(key, 0) + 1
    return COUNTS[key]


@server.tool()
async def progress(steps: int, ctx: Context) -> str:
    """Report progress `steps` times."""
    for i in range(steps):
        await ctx.report_progress(i + 1, steps, f"step {i + 1}")
    return f"done {steps}"


@server.tool()
async def stall(seconds: float, ctx: Context) -> str:
    """Report progress once, then take `seconds` to answer."""
    import asyncio

    await ctx.report_progress(0, 1, "started")
    await asyncio.sleep(seconds)
    return f"slept {seconds}"


class Confirm(BaseModel):
    ok: bool


@server.tool()
async def confirm(question: str, ctx: Context) -> str:
    """Ask the user (elicitation)."""
    r = await ctx.elicit(question, Confirm)
    return f"{r.action}:{r.data.ok if r.data is not None else None}"


@server.tool()
async def ask_llm(prompt: str, ctx: Context) -> str:
    """Ask the client's LLM (sampling)."""
    r = await ctx.session.create_message(
        [SamplingMessage(role="user", content=TextContent(type="text", text=prompt))], max_tokens=20
    )
    return f"llm said: {r.content.text}"


_background: set = set()


@server.tool()
async def log_later(text: str, ctx: Context) -> str:
    """Answer now; a moment later send ``text`` as a log message on the session's own
    GET stream (it belongs to no request)."""
    import asyncio

    session = ctx.session

    async def later() -> None:
        await asyncio.sleep(0.3)
        await session.send_log_message(level="info", data=text)

    t = asyncio.get_running_loop().create_task(later())
    _background.add(t)
    t.add_done_callback(_background.discard)
    return "scheduled"


@server.resource("data://{name}/info")
def info(name: str) -> str:
    """Information about a name."""
    return f"info about {name} from {args.name}"


@server.resource("data://static")
def static() -> str:
    """A static resource."""
    return f"static of {args.name}"


@server.tool(meta={"ui": {"resourceUri": "ui://panel/view.html"}, "ui/resourceUri": "ui://panel/view.html"})
def show_panel() -> str:
    """An MCP Apps tool: its UI is the ui:// resource below."""
    return f"panel of {args.name}"


@server.resource("ui://panel/view.html", mime_type="text/html;profile=mcp-app")
def panel() -> str:
    """The UI of show_panel."""
    return f"<p>panel of {args.name}</p>"


@server.prompt()
def greet(who: str) -> str:
    """Greet someone."""
    return f"Hello {who}, from {args.name}"


if args.http is not None:
    server.run(transport="streamable-http", host="127.0.0.1", port=args.http)
elif args.sse is not None:
    server.run(transport="sse", host="127.0.0.1", port=args.sse)
else:
    server.run()
