"""agentgw: an agent gateway for MCP, A2A and LLM traffic."""

__version__ = "0.1.0"
