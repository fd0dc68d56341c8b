"""`approval-console serve`: the native protocol's durable queue (SQLite, a token per agent and per operator)."""

from console.servers.serve.server import Serve

__all__ = ["Serve"]
