"""`dlrecap serve` over plain HTTP: the JSON endpoints, pictures, 404s, runs that come and go.

The server runs for real on 127.0.0.1 in a background thread; the run directories are
written by hand (helpers.make_run_dir) so each state a run can be in is set up exactly.
The page itself is tested in a real browser in test_serve_browser.py.
"""

from __future__ import annotations

import base64
import errno
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import tomllib
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from dlrecap import runs
from dlrecap.serve import views
from dlrecap.serve.server import DEFAULT_PORT, STATIC, open_server

from helpers import invoke, make_run_dir, wait_for

ROOT = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
HISTORY = "epoch,loss,accuracy,val_loss,val_accuracy\n1,0.69,0.5,0.7,0.45\n2,0.41,0.8,0.45,0.75\n"


def completed(folder: Path, name: str = "xor") -> Path:
    return make_run_dir(folder, history=HISTORY, config={"name": name, "training": {"epochs": 2}},
                        metrics={"name": name, "status": "completed", "epochs_run": 2,
                                 "best_epoch": 2, "task": "binary", "labels": ["0", "1"],
                                 "test": {"loss": 0.44, "accuracy": 0.8},
                                 "baseline": {"test": {"loss": 0.69, "accuracy": 0.5}}})


def write_frames(path: Path, count: int, grid: int = 24, *, frames: np.ndarray | None = None,
                 **extra: int) -> None:
    """A boundary_frames.npz as training keeps it: a surface sharpening over `count` epochs."""
    ny, nx = frames.shape[1:] if frames is not None else (grid // 2, grid)
    xs = np.linspace(-2.0, 2.0, nx, dtype=np.float32)
    ys = np.linspace(-1.0, 1.0, ny, dtype=np.float32)
    if frames is None:
        gx, gy = np.meshgrid(xs, ys)
        frames = np.stack([1 / (1 + np.exp(-(k + 1) * gx * gy)) for k in range(count)])
    tmp = path.with_name(".frames.tmp.npz")
    np.savez(tmp, epochs=np.arange(1, count + 1) * 5, xs=xs, ys=ys, frames=frames.astype(np.float32),
             **extra)
    os.replace(tmp, path)  # written whole, then renamed, as training does


@pytest.fixture
def served(tmp_path):
    """A runs directory with one completed run, served on a free port."""
    runs_dir = tmp_path / "runs"
    run = completed(runs_dir / "xor-20260101-120000")
    (run / "decision_boundary.png").write_bytes(PNG)
    server = open_server(runs_dir, 0)
    server.start()
    yield server, runs_dir, run
    server.stop()


def get(server, path: str, host: str | None = None) -> tuple[int, str, bytes]:
    """GET `path` exactly as written (no normalizing): status, media type, body."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.putrequest("GET", path, skip_host=host is not None)
    if host is not None:
        connection.putheader("Host", host)
    connection.endheaders()
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response.status, response.getheader("Content-Type"), body


def get_json(server, path: str) -> tuple[int, object]:
    status, media_type, body = get(server, path)
    assert media_type == "application/json"
    return status, json.loads(body, parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))


def test_the_list_names_each_run_with_status_epochs_and_test_metric(served):
    server, runs_dir, run = served
    status, listing = get_json(server, "/api/runs")
    assert status == 200
    assert listing == {"runs_dir": str(runs_dir), "live": None, "runs": [
        {"run": run.name, "name": "xor", "status": "completed", "epochs": 2,
         "started": "2026-01-01T12:00:00", "test": "accuracy 0.8000"}]}


def test_a_run_shows_history_metrics_config_and_pictures(served):
    server, _runs_dir, run = served
    status, state = get_json(server, f"/api/runs/{run.name}")
    assert status == 200
    assert (state["status"], state["epoch"], state["epochs"]) == ("completed", 2, 2)
    assert state["history"] == {"columns": ["epoch", "loss", "accuracy", "val_loss", "val_accuracy"],
                                "rows": [[1, 0.69, 0.5, 0.7, 0.45], [2, 0.41, 0.8, 0.45, 0.75]]}
    assert state["metrics"] == {"test": {"loss": 0.44, "accuracy": 0.8}}
    assert state["baseline"] == {"test": {"loss": 0.69, "accuracy": 0.5}}
    assert state["config"] == (run / "config.yaml").read_text()
    assert [p["name"] for p in state["pictures"]] == ["decision_boundary.png"]
    assert state["pictures"][0]["size"] == len(PNG) and state["frames"] is None
    assert get(server, f"/runs/{run.name}/decision_boundary.png") == (200, "image/png", PNG)


def test_pictures_show_in_the_page_order_and_as_they_appear(served):
    server, _runs_dir, run = served
    before = get_json(server, f"/api/runs/{run.name}")[1]["pictures"][0]
    for name in ("learning_curves.png", "neurons.png", "boundary.gif"):
        (run / name).write_bytes(b"GIF89a" if name.endswith(".gif") else PNG)
    (run / "decision_boundary.png").write_bytes(PNG + b"redrawn")
    pictures = get_json(server, f"/api/runs/{run.name}")[1]["pictures"]
    assert [p["name"] for p in pictures] == ["boundary.gif", "neurons.png", "decision_boundary.png",
                                             "learning_curves.png"]
    assert pictures[2]["size"] == before["size"] + 7  # the page reloads it: its size or time changed
    assert get(server, f"/runs/{run.name}/boundary.gif") == (200, "image/gif", b"GIF89a")


def test_a_running_run_counts_its_epochs_from_history(served):
    server, runs_dir, _run = served
    make_run_dir(runs_dir / "slow-20260101-130000", history=HISTORY,
                 metrics={"name": "slow", "status": "running", "pid": os.getpid()})
    (runs_dir / "slow-20260101-130000" / ".lock").write_text("")
    state = get_json(server, "/api/runs/slow-20260101-130000")[1]
    # Nobody holds the lock: a run that says `running` was cut short.
    assert (state["status"], state["epoch"], state["metrics"]) == ("interrupted", 2, {})


@pytest.mark.parametrize("path", [
    "/api/runs/nope-20260101-000000",
    "/api/runs/..",
    "/api/runs/..%2F..%2Fetc",
    "/api/runs/%2Fetc",
    "/api/runs/xor-20260101-120000%00",
    "/runs/xor-20260101-120000/metrics.json",
    "/runs/xor-20260101-120000/config.yaml",
    "/runs/xor-20260101-120000/model.keras",
    "/runs/xor-20260101-120000/../../../etc/passwd",
    "/runs/..%2F..%2F..%2Fetc/passwd",
    "/runs/xor-20260101-120000/..%2Fxor-20260101-120000%2Fdecision_boundary.png",
    "/runs/xor-20260101-120000/.%2Fdecision_boundary.png",
    "/static/../views.py",
    "/static/..%2Fviews.py",
    "/static/index.html/x",
    "/api",
    "/nothing",
])
def test_only_known_files_of_listed_runs_are_served(served, path):
    server, _runs_dir, _run = served
    status, body = get_json(server, path)
    assert (status, body) == (404, {"error": "gone"})


def test_a_link_out_of_the_run_directory_is_not_followed(served, tmp_path):
    server, _runs_dir, run = served
    secret = tmp_path / "secret.png"
    secret.write_bytes(PNG + b"secret")
    (run / "neurons.png").symlink_to(secret)
    assert get(server, f"/runs/{run.name}/neurons.png")[0] == 404


def test_requests_naming_another_host_are_refused(served):
    server, _runs_dir, run = served
    status, _type, body = get(server, f"/api/runs/{run.name}", host="attacker.example:80")
    assert status == 403 and b"unknown host" in body
    assert get(server, "/api/runs", host=f"localhost:{server.port}")[0] == 200


def test_a_deleted_run_is_gone_and_a_new_run_appears(served):
    server, runs_dir, run = served
    assert get_json(server, f"/api/runs/{run.name}")[0] == 200
    shutil.rmtree(run)
    assert get_json(server, f"/api/runs/{run.name}") == (404, {"error": "gone"})
    assert get(server, f"/runs/{run.name}/decision_boundary.png")[0] == 404
    assert get_json(server, "/api/runs")[1]["runs"] == []
    completed(runs_dir / "moons-20260102-080000", name="moons")
    assert [r["run"] for r in get_json(server, "/api/runs")[1]["runs"]] == ["moons-20260102-080000"]
    shutil.rmtree(runs_dir)  # even the runs folder may go
    assert get_json(server, "/api/runs")[1]["runs"] == []


def test_damaged_files_are_shown_as_such_not_as_errors(served):
    server, _runs_dir, run = served
    (run / "history.csv").write_text("epoch,loss\n1,nan\n2,inf\n3,0.5\n")
    state = get_json(server, f"/api/runs/{run.name}")[1]
    assert state["history"]["rows"] == [[1, None], [2, None], [3, 0.5]]  # JSON has no NaN
    (run / "metrics.json").write_text('{"status": "comp')
    status, state = get_json(server, f"/api/runs/{run.name}")
    assert status == 200 and state["status"] == "unreadable" and "unreadable" in state["problem"]
    (run / "config.yaml").write_bytes(b"\xff\xfe: [")
    assert get_json(server, f"/api/runs/{run.name}")[1]["epochs"] is None


def test_frames_go_as_one_byte_per_value(served):
    server, _runs_dir, run = served
    write_frames(run / runs.FRAMES_FILE, 3)
    state = get_json(server, f"/api/runs/{run.name}")[1]
    assert state["frames"]["size"] == (run / runs.FRAMES_FILE).stat().st_size
    status, frames = get_json(server, f"/api/runs/{run.name}/frames")
    assert status == 200
    with np.load(run / runs.FRAMES_FILE) as saved:
        assert frames["epochs"] == [5, 10, 15] and frames["shape"] == [3, 12, 24]
        assert frames["xs"] == saved["xs"].tolist() and frames["ys"] == saved["ys"].tolist()
        assert (frames["lo"], frames["hi"]) == (0.0, 1.0)  # probabilities: 0.5 stays the middle
        assert frames["kept_epoch"] is None
        data = np.frombuffer(base64.b64decode(frames["data"]), np.uint8).reshape(3, 12, 24)
        assert np.abs(data / 255 - saved["frames"]).max() <= 0.5 / 255 + 1e-6
        assert data.min() < 40 and data.max() > 215


def test_frames_of_a_regression_span_their_own_range(served):
    server, _runs_dir, run = served
    surface = np.array([[[-3.0, 0.0], [np.nan, 5.0]]])
    write_frames(run / runs.FRAMES_FILE, 1, frames=surface)
    frames = get_json(server, f"/api/runs/{run.name}/frames")[1]
    assert (frames["lo"], frames["hi"]) == (-3.0, 5.0)
    assert list(base64.b64decode(frames["data"])) == [0, 96, 0, 255]  # NaN as the lowest value


@pytest.mark.parametrize("content", [b"not a zip", b""])
def test_damaged_frames_are_422_and_missing_frames_404(served, content):
    server, _runs_dir, run = served
    assert get_json(server, f"/api/runs/{run.name}/frames") == (404, {"error": "gone"})
    (run / runs.FRAMES_FILE).write_bytes(content)
    status, body = get_json(server, f"/api/runs/{run.name}/frames")
    assert status == 422 and body["error"].startswith("boundary_frames.npz is unreadable")


def test_frames_say_whose_weights_the_last_frame_shows(served):
    server, _runs_dir, run = served
    np.savez(run / runs.FRAMES_FILE, epochs=[0, 5, 9], xs=[0.0, 1.0], ys=[0.0], kept_epoch=4,
             frames=np.zeros((3, 1, 2)))
    frames = get_json(server, f"/api/runs/{run.name}/frames")[1]
    assert (frames["epochs"], frames["kept_epoch"], frames["shape"]) == ([0, 5, 9], 4, [3, 1, 2])


def test_frames_of_the_wrong_shape_are_422(served):
    server, _runs_dir, run = served
    np.savez(run / runs.FRAMES_FILE, epochs=[1, 2], xs=[0.0, 1.0], ys=[0.0, 1.0],
             frames=np.zeros((3, 2, 2)))
    status, body = get_json(server, f"/api/runs/{run.name}/frames")
    assert status == 422 and "shape (3, 2, 2) for 2 epochs" in body["error"]


def test_runs_changing_under_the_server_never_make_it_fail(served):
    """Runs written, replaced and deleted as fast as possible while the page asks about them."""
    server, runs_dir, _run = served
    stop = threading.Event()

    def churn() -> None:
        while not stop.is_set():
            run = completed(runs_dir / "churn-20260103-000000", name="churn")
            (run / "learning_curves.png").write_bytes(PNG)
            write_frames(run / runs.FRAMES_FILE, 2, grid=4)
            (run / "history.csv").write_text(HISTORY[: len(HISTORY) // 2])
            shutil.rmtree(run, ignore_errors=True)

    writer = threading.Thread(target=churn)
    writer.start()
    try:
        seen = set()
        for _ in range(60):
            for path in ("/api/runs", "/api/runs/churn-20260103-000000",
                         "/api/runs/churn-20260103-000000/frames",
                         "/runs/churn-20260103-000000/learning_curves.png"):
                status = get(server, path)[0]
                assert status in (200, 404, 422), path
                seen.add(status)
    finally:
        stop.set()
        writer.join()
    assert 404 in seen and 200 in seen


def test_the_page_and_its_assets_ship_in_the_package_and_load_nothing_from_outside():
    folder = resources.files("dlrecap.serve").joinpath("static")
    shipped = sorted(p.name for p in folder.iterdir())
    assert shipped == sorted(STATIC)
    for name in shipped:
        text = folder.joinpath(name).read_text(encoding="utf-8")
        assert "http://" not in text and "https://" not in text and "//cdn" not in text, name
    # setuptools puts them into the wheel only when package-data names them.
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["dlrecap.serve"]
    assert all(any(Path("static", name).match(p) for p in patterns) for name in shipped)


def test_the_page_is_served_with_its_assets(served):
    server, _runs_dir, _run = served
    status, media_type, page = get(server, "/")
    assert (status, media_type) == (200, "text/html; charset=utf-8")
    for asset in ("/static/app.js", "/static/style.css"):
        assert asset.encode() in page
        status, media_type, _body = get(server, asset)
        assert status == 200 and media_type == STATIC[asset.rsplit("/", 1)[1]]


def test_without_a_port_the_default_is_used_or_else_a_free_one(tmp_path):
    holder = socket.socket()
    try:
        holder.bind(("127.0.0.1", DEFAULT_PORT))  # taken by us, or by someone else already
        holder.listen()
    except OSError as exc:
        assert exc.errno == errno.EADDRINUSE
    server = open_server(tmp_path, None)
    try:
        assert server.port != DEFAULT_PORT and server.url == f"http://127.0.0.1:{server.port}/"
    finally:
        server.stop()
        holder.close()


def test_a_port_in_use_is_exit_2_naming_it(tmp_path):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    try:
        result = invoke("serve", str(tmp_path), "--port", str(port))
    finally:
        holder.close()
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: --port {port}: cannot listen on 127.0.0.1:{port}: ")
    assert "--port 0 for a free one" in result.stderr and result.stdout == ""


@pytest.mark.parametrize(("args", "message"), [
    (["serve", "--port", "70000"], "'--port': Input should be less than or equal to 65535"),
    (["serve", "--port", "-1"], "'--port': Input should be greater than or equal to 0"),
    (["train", "configs/xor.yaml", "--port", "0"], "--port: only with --live"),
])
def test_bad_port_flags_are_usage_errors(args, message):
    result = invoke(*args)
    assert result.exit_code == 2 and result.stderr.startswith("error: ")
    assert message in result.stderr and "Traceback" not in result.output


def test_serving_a_file_is_exit_2(tmp_path):
    (tmp_path / "runs").write_text("")
    result = invoke("serve", str(tmp_path / "runs"))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: Invalid value for RUNS_DIR: {tmp_path / 'runs'} is not a folder")


def test_serve_prints_its_address_and_ctrl_c_stops_it_with_130(tmp_path):
    completed(tmp_path / "runs" / "xor-20260101-120000")
    proc = subprocess.Popen([sys.executable, "-m", "dlrecap", "serve", str(tmp_path / "runs"),
                             "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = proc.stdout.readline().strip()
    assert url.startswith("http://127.0.0.1:") and url.endswith("/"), proc.stderr.read()
    port = int(url.rsplit(":", 1)[1].rstrip("/"))
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", "/api/runs")
    assert json.loads(connection.getresponse().read())["runs"][0]["run"] == "xor-20260101-120000"
    connection.close()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert out == "" and err == f"serving the runs in {tmp_path / 'runs'}; Ctrl-C stops\nstopped serving\n"


def test_serve_waits_for_a_runs_directory_that_does_not_exist_yet(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "dlrecap", "serve", str(tmp_path / "later"),
                             "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline().strip().rsplit(":", 1)[1].rstrip("/"))
        completed(tmp_path / "later" / "xor-20260101-120000")

        def listed() -> bool:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            connection.request("GET", "/api/runs")
            return bool(json.loads(connection.getresponse().read())["runs"])

        wait_for(listed, 30, what="the new run in the list", processes=[proc])
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert "does not exist yet: runs appear as they start" in err and "Traceback" not in err


def test_serving_loads_neither_tensorflow_nor_matplotlib():
    code = ("import sys; import dlrecap.serve.server; "
            "print(sorted(m for m in ('tensorflow', 'keras', 'matplotlib') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout.strip()) == (0, "[]"), done.stderr


def test_the_page_follows_the_newest_run_of_the_live_process(tmp_path):
    for stamp, pid in (("20261130-100000", 4242), ("20261130-110000", 4242),
                       ("20261130-120000", 5151)):
        folder = completed(tmp_path / f"xor-{stamp}")
        metrics = json.loads((folder / "metrics.json").read_text())
        (folder / "metrics.json").write_text(json.dumps({**metrics, "pid": pid}))
    assert views.run_list(tmp_path, live_pid=4242)["live"] == "xor-20261130-110000"
    assert views.run_list(tmp_path, live_pid=5151)["live"] == "xor-20261130-120000"
    assert views.run_list(tmp_path, live_pid=1)["live"] is None
    assert views.run_list(tmp_path)["live"] is None
