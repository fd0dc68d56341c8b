"""The `approval-console` command line: argument parsing, doctor and the label commands; opens the app for `run`."""

from console.cli.commands import main

__all__ = ["main"]
