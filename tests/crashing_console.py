"""The real console app with one handler that raises, run by the CLI's own wrapper; for tests/test_stop_and_crash.py.

The first queue change (the first listing from the fleet) raises inside the app's message handler: an unexpected
exception on a real path, with no switch in the product code.

    python -m tests.crashing_console DATA_DIR FLEET_URL
"""

from __future__ import annotations

import sys
from pathlib import Path

from console.cli.commands import run_app
from console.engine.config import Config, SourceConfig
from console.engine.session import LOG_NAME, Session, setup_logging
from console.tui.app import STOP_SIGNALS, ApprovalApp, QueueChanged

# Terminal escapes in the message: the one line printed about the crash must not replay them.
FAILURE = "the queue handler failed \x1b]52;c;cm0gLXJmIC8K\x07\x1b[2J on purpose"


class CrashingApp(ApprovalApp):
    def on_queue_changed(self, message: QueueChanged) -> None:
        super().on_queue_changed(message)
        raise RuntimeError(FAILURE)


def main(data_dir: Path, url: str) -> int:
    config = Config(operator="alice", sources=(SourceConfig(name="fleet", url=url, poll_interval=0.2),))
    setup_logging(data_dir)
    session = Session(config, data_dir, token_for=lambda _name: None)
    return run_app(CrashingApp(session, stop_signals=STOP_SIGNALS), data_dir / LOG_NAME)


if __name__ == "__main__":
    raise SystemExit(main(Path(sys.argv[1]), sys.argv[2]))
