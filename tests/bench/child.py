"""Child processes of the bench, each a fresh interpreter: `python -m tests.bench.child COMMAND ...`.

- `fleet INITIAL SEED`: the demo fleet with INITIAL items and no generator, plus a byte-counting relay in front of it.
  Prints {"url", "relay"} as one JSON line, then answers `bytes` on stdin with the relay's byte count; stops at EOF.
- `app DATA_DIR`: the real app, headless, over DATA_DIR with no sources. At the first interactive frame it prints one
  JSON line with its resident memory (now and peak, KiB) and exits. The parent times the launch.

Imports stay inside the commands, so `app` pays only for what the console itself imports.
"""

from __future__ import annotations

import sys


def serve_fleet(initial: int, seed: int) -> None:
    import contextlib
    import json
    import socket
    import threading

    from console.servers.fleet import Fleet

    fleet = Fleet(seed=seed, interval=None, initial=initial)
    url = fleet.start()
    upstream = fleet.url.removeprefix("http://").rsplit(":", 1)
    counted = [0]
    lock = threading.Lock()

    def pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                with lock:
                    counted[0] += len(data)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def relay(listener: socket.socket) -> None:
        while True:
            client, _ = listener.accept()
            server = socket.create_connection((upstream[0], int(upstream[1])))
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=pump, args=(source, sink), daemon=True).start()

    listener = socket.create_server(("127.0.0.1", 0))
    threading.Thread(target=relay, args=(listener,), daemon=True).start()
    relay_url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    print(json.dumps({"url": url, "relay": relay_url}), flush=True)
    for line in sys.stdin:
        if line.strip() == "bytes":
            with lock:
                print(counted[0], flush=True)
    fleet.stop()
    listener.close()


def launch_app(data_dir: str) -> None:
    import asyncio
    import json
    from pathlib import Path

    from console.engine.config import Config
    from console.engine.session import Session
    from console.tui.app import ApprovalApp
    from tests.bench.frames import SIZE, FrameProbe, interactive
    from tests.bench.proc import rss_kb

    async def run() -> None:
        app = ApprovalApp(
            Session(Config(operator="alice"), Path(data_dir), token_for=lambda _name: None, check_later=True)
        )
        probe = FrameProbe(app)
        ready = probe.expect(lambda: interactive(app))
        async with app.run_test(size=SIZE):
            await asyncio.wait_for(ready, timeout=60)
            print(json.dumps({"rss_kb": rss_kb(), "peak_kb": rss_kb("VmHWM")}), flush=True)

    asyncio.run(run())


def main(argv: list[str]) -> None:
    command, *args = argv
    if command == "fleet":
        serve_fleet(int(args[0]), int(args[1]))
    elif command == "app":
        launch_app(args[0])
    else:
        raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
