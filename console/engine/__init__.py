"""The headless engine: session, poller, sync engine, sources, config and secrets; runs without a terminal."""
