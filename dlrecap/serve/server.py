"""The HTTP side of `dlrecap serve`: a server on 127.0.0.1 and the routes it answers.

Routes (GET only):

| path | answer |
| --- | --- |
| `/` , `/static/app.js`, `/static/style.css` | the page, shipped in the package |
| `/api/runs` | the runs, oldest first, and which one `train --live` follows |
| `/api/runs/RUN` | one run: status, progress, metrics, history, config, files present |
| `/api/runs/RUN/frames` | its boundary frames, one byte per value |
| `/runs/RUN/PICTURE` | one of the pictures `views.PICTURES` names |

Anything else, an unknown run or a run deleted meanwhile is 404 with `{"error": "gone"}`.
"""

from __future__ import annotations

import errno
import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from dlrecap.errors import DlrecapError
from dlrecap.serve import views

HOST = "127.0.0.1"
DEFAULT_PORT = 8484
STATIC = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    media_type: str


def _json(status: int, data: Any) -> Reply:
    return Reply(status, json.dumps(data, allow_nan=False).encode("utf-8"), "application/json")


def _static(name: str) -> Reply:
    if name not in STATIC:
        return _json(404, {"error": "gone"})
    body = resources.files("dlrecap.serve").joinpath("static", name).read_bytes()
    return Reply(200, body, STATIC[name])


def route(runs_dir: Path, path: str, live_pid: int | None = None) -> Reply:
    """The reply to GET `path` (without its query) for the runs in `runs_dir`.

    Each part of the path is decoded on its own, so an encoded `/` (`%2F`) stays inside
    the part, and `views.run_path` refuses any run name that is not one folder's name.
    """
    parts = [unquote(part) for part in path.split("/")[1:]]
    try:
        match parts:
            case [""]:
                return _static("index.html")
            case ["static", name]:
                return _static(name)
            case ["api", "runs"]:
                return _json(200, views.run_list(runs_dir, live_pid))
            case ["api", "runs", run]:
                return _json(200, views.run_state(runs_dir, run))
            case ["api", "runs", run, "frames"]:
                return _json(200, views.boundary_frames(runs_dir, run))
            case ["runs", run, name]:
                return Reply(200, *views.picture(runs_dir, run, name))
    except views.Gone:
        pass
    except views.Unreadable as exc:
        return _json(422, {"error": str(exc)})
    return _json(404, {"error": "gone"})


class RunServer(ThreadingHTTPServer):
    """Serves the page and the runs of `runs_dir` on 127.0.0.1, one thread per request.

    Args:
        port: the port; 0 lets the system pick a free one.
        runs_dir: the runs directory; it need not exist yet.
        live_pid: the process whose run the page follows (`train --live`), or None.
    """

    daemon_threads = True  # a browser's open request never keeps the command from ending

    def __init__(self, port: int, runs_dir: Path, live_pid: int | None = None):
        super().__init__((HOST, port), _Handler)
        self.runs_dir = Path(runs_dir)
        self.live_pid = live_pid
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/"

    def answer(self, raw_path: str, host: str | None) -> Reply:
        """The reply to a GET of `raw_path` sent with the Host header `host`."""
        # A page elsewhere on the web may point its own name at 127.0.0.1 to read this one
        # (DNS rebinding); its requests then name that host, so only our own names pass.
        if host is not None and host not in (f"{HOST}:{self.port}", f"localhost:{self.port}"):
            return _json(403, {"error": f"unknown host {host!r}; open {self.url}"})
        try:
            return route(self.runs_dir, urlsplit(raw_path).path, self.live_pid)
        except Exception as exc:  # a bug here must neither end the server nor print per request
            return _json(500, {"error": f"internal error: {type(exc).__name__}"})

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Say nothing: what can fail here is a browser hanging up in the middle of a reply."""

    def start(self) -> None:
        """Serve in a background thread (for `train --live`, which trains in the main one)."""
        # Polled often, so that `stop` returns at once.
        self._thread = threading.Thread(target=self.serve_forever, args=(0.05,), name="dlrecap-serve",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread is not None:
            self.shutdown()
            self._thread.join()
            self._thread = None
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: RunServer

    def do_GET(self) -> None:
        reply = self.server.answer(self.path, self.headers.get("Host"))
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.media_type)
        self.send_header("Content-Length", str(len(reply.body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        self.wfile.write(reply.body)

    def log_message(self, format: str, *args: Any) -> None:
        """No line per request: the page asks every second."""


def open_server(runs_dir: Path, port: int | None, live_pid: int | None = None) -> RunServer:
    """A server for `runs_dir` listening on 127.0.0.1.

    Args:
        runs_dir: the runs directory.
        port: the port; 0 picks a free one; None tries `DEFAULT_PORT`, then a free one.
        live_pid: the process whose run the page follows, or None.

    Raises:
        DlrecapError: the port given cannot be listened on (in use, or not allowed).
    """
    if port is None:
        try:
            return RunServer(DEFAULT_PORT, runs_dir, live_pid)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise _cannot_listen(DEFAULT_PORT, exc) from None
            port = 0
    try:
        return RunServer(port, runs_dir, live_pid)
    except OSError as exc:
        raise _cannot_listen(port, exc) from None


def _cannot_listen(port: int, exc: OSError) -> DlrecapError:
    return DlrecapError(f"--port {port}: cannot listen on {HOST}:{port}: {exc.strerror or exc}",
                        fix="choose another port, or --port 0 for a free one")
