"""First run with no config (or a config without sources): how to add a source, or open the demo fleet."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar, Literal

from rich.text import Text
from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Button, Footer, Static

from console.engine.config import token_env_var
from console.tui.keymap import hint
from widgets.safe_text import literal

Choice = Literal["demo"] | None


def first_run_text(config_path: Path) -> Text:
    exists = config_path.exists()
    return Text.assemble(
        ("Welcome to approval-console\n\n", "bold"),
        "There are no agent sources to watch yet: ",
        literal(str(config_path)),
        (" has none.\n\n" if exists else " does not exist.\n\n"),
        ("Add a source", "bold"),
        " (an agent service speaking PROTOCOL.md) from a shell:\n\n",
        ("    approval-console sources add billing https://billing-agents.internal:8700\n\n", "bold"),
        # One string per paragraph: the panel wraps it; a newline inside one breaks a line mid-sentence.
        "It writes the config and asks for the source's token without echo; the token goes to the system keyring, ",
        f"or set it in the environment ({token_env_var('billing')}). Then start approval-console again.\n\n",
        ("Or look around first", "bold"),
        ": the demo fleet is a local server of made-up agents proposing things. ",
        "Its data is kept apart from real data. (Later: approval-console demo.)",
    )


class FirstRunScreen(Screen[Choice]):
    CSS_PATH = Path(__file__).with_name("first_run.tcss")
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("d", "demo", "Open the demo fleet", id="demo"),
        Binding("q,escape", "quit", "Quit", id="first_run_quit"),
    ]

    def __init__(self, config_path: Path) -> None:
        super().__init__()
        self._config_path = config_path

    def compose(self) -> ComposeResult:
        with Vertical(id="first-run"):
            yield Static(first_run_text(self._config_path), id="first-run-text")
            with Horizontal(id="first-run-buttons"):
                yield Button(Content(hint(self.app, "Open the demo fleet ({demo:1})")), id="demo", variant="primary")
                yield Button(Content(hint(self.app, "Quit ({first_run_quit:1})")), id="quit")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#demo", Button).focus()

    @on(Button.Pressed, "#demo")
    def action_demo(self) -> None:
        self.dismiss("demo")

    @on(Button.Pressed, "#quit")
    def action_quit(self) -> None:
        self.dismiss(None)


class FirstRunApp(App[Choice]):
    """Runs the first-run screen alone; `run()` returns "demo" when the operator picked the demo fleet."""

    TITLE = "approval-console"

    def __init__(
        self, config_path: Path, theme: str = "textual-dark", keys_in_force: Mapping[str, str] | None = None
    ) -> None:
        """`keys_in_force`: the actions a config's [keymap] rebinds and their keys (keymap.rebound)."""
        super().__init__()
        self._config_path = config_path
        self._theme_name = theme
        self.keys_in_force = dict(keys_in_force or {})

    def on_mount(self) -> None:
        if self._theme_name in self.available_themes:
            self.theme = self._theme_name
        self.set_keymap(self.keys_in_force)
        self.push_screen(FirstRunScreen(self._config_path), self.exit)
