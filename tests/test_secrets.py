"""Secrets stay secret: a canary token through a full session is found nowhere afterwards; TLS is verified; plain
http leaves the machine only when the config says so; a redirect never carries the token to another host.
"""

from __future__ import annotations

import asyncio
import http.server
import io
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from rich.console import Console
from rich.traceback import Traceback

from console.cli import main
from console.engine.config import ConfigError, SourceConfig, load
from console.engine.secrets import Token, get_token
from console.engine.session import Session, setup_logging
from console.engine.sources.native import NativeSource
from console.servers.fleet import Fleet
from console.tui.app import ApprovalApp
from storage.records import Decision, Verdict
from tests.conftest import eventually
from tests.factories import decision as decision_for
from tests.factories import item
from tests.servers import Fault, FaultyProxy, closed_port_url, running

CANARY = "canary-5e1f-token-do-not-leak"


def _all_bytes_under(*roots: Path) -> Iterator[tuple[Path, bytes]]:
    for root in roots:
        for path in [root] if root.is_file() else root.rglob("*"):
            if path.is_file():
                yield path, path.read_bytes()


async def test_a_canary_token_used_in_a_full_session_is_found_nowhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    secured = Fleet(seed=5, interval=None, initial=4, tokens={CANARY: "dave"})
    secured.start()
    data_dir, config_path, shots = tmp_path / "data", tmp_path / "config.toml", tmp_path / "shots"
    shots.mkdir()
    try:
        monkeypatch.setenv("APPROVAL_CONSOLE_TOKEN_FLEET", CANARY)  # the real lookup: environment first
        config_path.write_text(
            f'operator = "dave"\nundo_seconds = 0\n\n[[sources]]\nname = "fleet"\nurl = "{secured.url}"\n'
            "poll_interval = 0.2\nlong_poll = 1.0\n",
            encoding="utf-8",
        )
        setup_logging(data_dir)
        session = Session(load(config_path), data_dir, token_for=get_token)
        app = ApprovalApp(session)
        async with app.run_test(size=(140, 45), notifications=True) as pilot:
            await eventually(lambda: session.store.queue.count() == 4, what="the queue listed with the token")
            await eventually(lambda: app.main.shown is not None, what="an item shown")
            shown = app.main.shown
            assert shown is not None
            session.decide(shown, Verdict.reject, reason_code="unsafe", comment="not today")
            await eventually(lambda: session.store.outbox.waiting_count() == 0, what="the decision synced")
            secured.change_item(secured.pending()[0]["id"], policy="changed")  # a conflict to show
            await pilot.press("j")
            app.save_screenshot("main.svg", str(shots))
            await pilot.press("p")
            await pilot.pause(0.2)
            app.save_screenshot("problems.svg", str(shots))
        assert secured.applied_decisions()[0]["operator"] == "dave", "the token was really used"

        # A traceback of a failed request, rendered the way Textual renders a crash: with every frame's locals.
        failing = NativeSource(SourceConfig(name="fleet", url=closed_port_url(), timeout=1.0), Token(CANARY, "env"))
        try:
            await failing.fetch(None)
        except Exception as exc:
            out = io.StringIO()
            Console(file=out, width=200).print(
                Traceback.from_exception(type(exc), exc, exc.__traceback__, show_locals=True)
            )
            traceback_text = out.getvalue()
        finally:
            await failing.aclose()
        assert "NativeSource" in traceback_text or "fetch" in traceback_text
        assert CANARY not in traceback_text

        labels = tmp_path / "labels.jsonl"
        exported = main(["export", "--data-dir", str(data_dir), "--output", str(labels)])
        doctor = ["doctor", "--config", str(config_path), "--data-dir", str(data_dir)]
        assert await asyncio.to_thread(main, doctor) == 0  # the doctor runs its own event loop
        printed = capsys.readouterr()
        assert CANARY not in printed.out + printed.err
        # Until the labels table ships in a migration, export says so (and writes nothing); then the file is searched.
        assert exported == 0 or "holds no labels yet" in printed.err
        places = list(_all_bytes_under(data_dir, config_path, shots, *([labels] if exported == 0 else [])))
        assert any(p.name == "console.log" for p, _ in places) and any(p.suffix == ".svg" for p, _ in places)
        for path, content in places:
            assert CANARY.encode() not in content, path
        assert CANARY not in repr(session.sources["fleet"].config) and CANARY not in repr(get_token("fleet"))
    finally:
        secured.stop()


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """An HTTPS server on loopback whose certificate no public CA signed; it records every request it reads."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("Authorization", ""))
            self.send_response(200)
            self.send_header("Content-Length", "12")
            self.end_headers()
            self.wfile.write(b'{"items":[]}')

        def log_message(self, format: str, *args: object) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


async def test_tls_is_verified_and_an_unknown_certificate_refused(tls_server: tuple[str, list[str]]) -> None:
    url, seen = tls_server
    source = NativeSource(SourceConfig(name="tls", url=url, timeout=3.0), Token(CANARY, "environment"))
    with pytest.raises(Exception, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify failed") as caught:
        await source.fetch(None)
    assert "cannot reach" in str(caught.value)
    result = await source.send_decision(_decision())
    assert result.state is None and "CERTIFICATE_VERIFY_FAILED" in result.detail
    await source.aclose()
    assert seen == [], "no request, so no token, ever reached a server we could not verify"


def _decision() -> Decision:
    return decision_for(item("itm_1", source="tls"))


@pytest.mark.parametrize(
    ("url", "extra", "accepted"),
    [
        ("http://127.0.0.1:8700", "", True),
        ("http://localhost:8700", "", True),
        ("http://[::1]:8700", "", True),
        ("https://agents.example:8700", "", True),
        ("http://agents.example:8700", "", False),
        ("http://10.0.0.7:8700", "", False),
        ("http://agents.example:8700", "allow_insecure_http = true\n", True),
    ],
)
def test_plain_http_leaves_the_machine_only_when_the_config_says_so(
    tmp_path: Path, url: str, extra: str, accepted: bool
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(f'operator = "alice"\n\n[[sources]]\nname = "billing"\nurl = "{url}"\n{extra}', encoding="utf-8")
    if accepted:
        assert load(path).sources[0].url == url
        return
    with pytest.raises(ConfigError) as caught:
        load(path)
    assert caught.value.line == 5 and "plain http to another machine" in caught.value.problem
    assert "allow_insecure_http = true" in caught.value.fix and "https://" in caught.value.fix


async def test_a_redirect_to_another_host_does_not_carry_the_token(fleet: Fleet, tmp_path: Path) -> None:
    with running(FaultyProxy()) as elsewhere, running(FaultyProxy(fleet.url)) as source_side:
        target = f"{elsewhere.url}/v1/items"
        source_side.inject(
            Fault(302, b"", {"Location": target}, path_prefix="/v1/items"),
            Fault(307, b"", {"Location": f"{elsewhere.url}/v1/items/x/decision"}, path_prefix="/v1/items/itm_1"),
        )
        source = NativeSource(SourceConfig(name="moved", url=source_side.url, timeout=2.0), Token(CANARY, "env"))
        with pytest.raises(Exception, match=r"redirect to .* not followed") as caught:
            await source.fetch(None)
        assert CANARY not in str(caught.value)
        result = await source.send_decision(_decision())
        assert result.state is None and "redirect to" in result.detail and "not followed" in result.detail
        await source.aclose()
        assert elsewhere.requests == [], "the other host never heard from us"
