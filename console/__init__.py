"""The app: screens, sources, sync, config, CLI and the demo fleet, wired together."""
