"""`deadline_warning`: one window for near deadlines (the queue's mark, the detail, alerts, pages), written as seconds
or a duration; a bad value names the file, the line and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from console.engine.config import ConfigError, parse
from console.engine.pager import Pager

HEAD = 'operator = "alice"\n'
PAGER = '\n[[pager]]\nname = "phone"\nkind = "ntfy"\nurl = "https://ntfy.sh/oncall"\n'


@pytest.mark.parametrize(
    ("text", "window"),
    [
        ("", 120.0),
        ('deadline_warning = "5m"\n', 300.0),
        ('deadline_warning = "90s"\n', 90.0),
        ('deadline_warning = "1h30m"\n', 5400.0),
        ("deadline_warning = 45\n", 45.0),
        ("deadline_warning = 0\n", 0.0),
        ("[notifications]\ndeadline_seconds = 30\n", 30.0),  # the older name still works alone
    ],
)
def test_the_window_reads_seconds_or_durations(text: str, window: float) -> None:
    assert parse(HEAD + text, Path("c.toml")).deadline_window == window


@pytest.mark.parametrize(
    ("text", "line", "problem", "fix"),
    [
        ('deadline_warning = "soon"\n', 2, 'deadline_warning = "soon" is not a duration', 'deadline_warning = "5m"'),
        ("deadline_warning = true\n", 2, "deadline_warning = true is not a duration", "s, m or h"),
        ("deadline_warning = 90000\n", 2, "from 0 s to 24 h", 'deadline_warning = "5m"'),
        ("deadline_warning = -5\n", 2, "not a duration", "0: no warning"),
        (
            'deadline_warning = "2m"\n[notifications]\ndeadline_seconds = 30\n',
            2,
            "both say when a deadline is near",
            "remove deadline_seconds from [notifications]",
        ),
    ],
)
def test_a_bad_window_names_file_line_and_fix(text: str, line: int, problem: str, fix: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(HEAD + text, Path("c.toml"))
    error = caught.value
    assert (error.path, error.line) == (Path("c.toml"), line)
    assert problem in error.problem and fix in error.fix


async def test_a_pager_pages_deadlines_in_the_same_window_unless_it_says_otherwise() -> None:
    for text, window in (('deadline_warning = "10m"\n' + PAGER, 600.0), (PAGER + "deadline_seconds = 60\n", 60.0)):
        config = parse(HEAD + text, Path("c.toml"))
        pager = Pager(
            config.pager,
            reads=None,  # type: ignore[arg-type]  # nothing is read here
            item=lambda _source, _id: None,
            secret_for=lambda _name: None,
            started_at=0.0,
            deadline_window=config.deadline_window,
        )
        try:
            assert [p.watch.deadline_seconds for p in pager.pagers] == [window]
        finally:
            await pager.aclose()
