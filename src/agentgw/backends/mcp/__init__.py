"""MCP gateway backend: federate stdio, SSE, streamable-HTTP and OpenAPI tool servers."""

from .backend import McpBackend
from .session import Registry
from .token import SessionCodec

__all__ = ["McpBackend", "Registry", "SessionCodec"]
