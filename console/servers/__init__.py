"""Servers that speak PROTOCOL.md: the demo fleet (and the durable queue server); they never import the app."""
