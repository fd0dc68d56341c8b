"""The demo fleet: a local HTTP server playing several agent services (the reference implementation of PROTOCOL.md)."""

from console.servers.fleet.server import Fleet

__all__ = ["Fleet"]
