"""bench/: the workload table, the measuring, the report; a --quick run end to end (slow)."""

from __future__ import annotations

import dataclasses
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from dlrecap.config.load import load_config

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


run = _load("run")
report = run.report


def _config(key: str):
    workload = next(w for w in run.WORKLOADS if w.key == key)
    return workload, load_config(BENCH / "configs" / workload.config).config


def test_workloads_are_the_issues():
    assert [w.key for w in run.WORKLOADS] == ["W1", "W2", "W3", "W4"]
    w1, c = _config("W1")
    assert (c.data.dataset, c.data.samples, w1.rows) == ("xor", 600, None)
    assert [(layer.units, layer.activation) for layer in c.model.layers] == [(12, "tanh")]
    assert (c.training.batch_size, c.training.epochs, c.training.early_stopping) == (32, 300, None)
    _, c = _config("W2")
    assert c.data.dataset == "digits" and [layer.units for layer in c.model.layers] == [64, 64]
    assert (c.model.activation, c.model.dropout, c.training.batch_size) == ("relu", 0.2, 32)
    assert c.training.early_stopping.patience == 10
    for key, rows, batch, epochs in (("W3", 100_000, 128, 5), ("W4", 1_000_000, 1024, 2)):
        w, c = _config(key)
        assert w.rows == rows and c.data.path is not None
        assert [layer.units for layer in c.model.layers] == [128, 128]
        assert (c.model.activation, c.model.dropout) == ("relu", 0.2)
        assert (c.training.batch_size, c.training.epochs, c.training.early_stopping) == (
            batch, epochs, None)


def test_every_target_names_a_workload_and_a_known_kind():
    keys = {w.key for w in run.WORKLOADS}
    kinds = {"fit_speedup", "wall_speedup", "throughput_ratio", "memory", "metric"}
    for key, what, kind, base, threshold in run.TARGETS:
        assert key in keys and kind in kinds and threshold > 0 and what
        assert base in (None, *run.CONTENDERS)


def test_measure_reports_the_childs_peak_rss_and_its_failure(tmp_path):
    grab = "b = bytearray(200 * 2**20); b[::4096] = b'x' * len(b[::4096]); print('ok')"
    seen = run.measure([sys.executable, "-c", grab], tmp_path / "log")
    assert seen.stdout.strip() == "ok" and seen.wall_s > 0 and seen.cpu_s > 0 and seen.rss_mb >= 200
    with pytest.raises(run.ChildFailed, match="exited with 3"):
        run.measure([sys.executable, "-c", "import sys; print('boom', file=sys.stderr); sys.exit(3)"],
                    tmp_path / "log2")
    assert "boom" in (tmp_path / "log2").read_text()


def _sample(wall, fit, rss, metric, epochs=10, rows=100, engine=None):
    return run.Sample(wall, rss, fit, epochs, rows, metric, "accuracy", 2 * fit, engine,
                      "cpu" if engine else None)


def _context(workload_keys=("W1", "W4")):
    workloads = [w for w in run.WORKLOADS if w.key in workload_keys]
    samples = {}
    for w in workloads:
        samples[(w.key, "dlrecap")] = [_sample(4.0, 1.0, 900, 0.95, engine="fast"),
                                       _sample(5.0, 2.0, 950, 0.96, engine="fast"),
                                       _sample(40.0, 3.0, 990, 0.97, engine="fast")]
        samples[(w.key, "keras")] = [_sample(12.0, 10.0, 800, 0.97)]
        samples[(w.key, "sklearn")] = [_sample(3.0, 0.5, 200, 0.99)]
    infos = {w.key: {"rows": {"train": 60, "validation": 20, "test": 20},
                     "data_bytes": 100 * 2**20, "overrides": []} for w in workloads}
    return report.Context(workloads=workloads, targets=run.TARGETS, samples=samples, infos=infos,
                          reps=3, quick=False, tf_baseline_mb=700.0, floor_mb=20.0,
                          loads=[0.1, 0.5], seconds=60.0, command="bench/run.py")


def test_report_uses_medians_ratios_and_targets():
    text = report.render(_context())
    # Medians of dlrecap's three runs: wall 5.0, training 2.0 s, RSS 950 MB, accuracy 0.96.
    assert "| W1 | dlrecap (fast engine) | 5.00 | 4.0 | 2.000 | 10 | 500 | 950 | accuracy 0.9600 |" in text
    assert "| W1 | plain Keras fit | 5.00x faster | 2.40x faster | 5.00x | 1.19x |" in text
    assert "| W1 | training phase >= 10x faster than plain fit | 5.00x (target 10x, 50% short) " \
           "| **missed** |" in text
    assert "| W1 | test metric within 1 point of keras | 0.9600 vs 0.9700 (-1.0 points) | met |" in text
    assert "test metric within 1 point of sklearn | 0.9600 vs 0.9900 (-3.0 points) | **missed** |" in text
    # W4: 950 MB against 2 x 100 MB data + 700 MB TensorFlow = 900 MB.
    assert "budget 2 x 100 MB data + 700 MB TensorFlow = 900 MB; (RSS - TF) / data = 2.50x " \
           "| **missed** |" in text
    assert "W2" not in text.split("### Targets")[1]


def test_results_file_keeps_notes_and_the_other_devices_block(tmp_path):
    path = tmp_path / "RESULTS.md"
    ctx = _context(("W1",))
    report.write_results(path, ctx, "first cpu run\n")
    assert "first cpu run" in path.read_text() and report.NOTES_MARK in path.read_text()
    path.write_text(path.read_text().replace("<!-- results:cpu -->", "<!-- results:gpu -->\ngpu "
                                             "numbers\n<!-- /results:gpu -->\n<!-- results:cpu -->")
                    + "my analysis\n")
    report.write_results(path, ctx, "second cpu run\n")
    text = path.read_text()
    assert "second cpu run" in text and "first cpu run" not in text
    assert "gpu numbers" in text and text.rstrip().endswith("my analysis")


def test_bad_options_are_refused():
    with pytest.raises(SystemExit):
        run.parse_args(["--only", "W9"])
    with pytest.raises(SystemExit):
        run.parse_args(["--contenders", "pytorch"])
    args = run.parse_args(["--quick", "--only", "w2"])
    assert args.only == ["W2"] and args.output is None


def test_sweep_section_gives_medians_ratios_and_targets():
    sweep_speed = run.sweep_speed
    text = "\n".join(sweep_speed.lines({"train": [10.0, 8.0, 9.0], "sweep_jobs1": [13.0, 14.0, 20.0],
                                        "sweep_jobs2": [16.0, 12.0, 15.0]}))
    # Medians: train 9, --jobs 1 14, --jobs 2 15: 14 / 9 = 1.56x one train, 14 / 15 = 0.93x.
    assert "| 6-trial grid sweep, `--jobs 1` | 14.00 |" in text
    assert "the sweep takes 1.56x one train (target at most 1.5x: **missed** by 0.06)" in text
    assert "`--jobs 2` is 0.93x as fast as `--jobs 1` (target at least 1x: **missed** by 0.07)" in text
    text = "\n".join(sweep_speed.lines({"train": [10.0], "sweep_jobs1": [12.0], "sweep_jobs2": [6.0]}))
    assert "1.20x one train (target at most 1.5x: met)" in text and "2.00x as fast" in text
    assert "a few seconds" not in text  # the long-trial pair only where it was measured
    text = "\n".join(sweep_speed.lines({"train": [10.0], "sweep_jobs1": [12.0], "sweep_jobs2": [6.0],
                                        "long_jobs1": [30.0, 24.0, 26.0], "long_jobs2": [20.0, 21.0, 19.0]}))
    assert "| the same sweep, trials of a few seconds, `--jobs 2` | 20.00 |" in text
    assert ("with trials of a few seconds, `--jobs 2` is 1.30x as fast as `--jobs 1` "
            "(target at least 1x: met)") in text
    assert run.parse_args(["--only", "sweep"]).only == ["SWEEP"]
    assert "### Sweeps" in report.render(dataclasses.replace(_context(("W1",)), sweeps=["| x |"]))


def _quick(tmp_path, *extra):
    out = tmp_path / "RESULTS.md"
    proc = subprocess.run([sys.executable, str(BENCH / "run.py"), "--quick", "--reps", "1",
                           "--output", str(out), *extra], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout, out.read_text()


@pytest.mark.slow
def test_quick_run_of_the_scikit_learn_baseline(tmp_path):
    stdout, written = _quick(tmp_path, "--only", "W1,W3", "--contenders", "sklearn")
    assert "| W1 | scikit-learn MLP |" in stdout and "| W3 | scikit-learn MLP |" in stdout
    assert "| W1 | scikit-learn MLP |" in written and "QUICK" in written


@pytest.mark.slow
def test_quick_run_of_every_contender(tmp_path):
    stdout, _ = _quick(tmp_path, "--only", "W1")
    for label in ("dlrecap (numpy engine)", "plain Keras fit", "scikit-learn MLP"):
        assert f"| W1 | {label} |" in stdout
    assert "| W1 | training phase >= 10x faster than plain fit |" in stdout


def test_w5_is_chosen_with_only_and_reported_as_a_ratio_and_its_target():
    assert run.parse_args(["--only", "w5"]).only == ["W5"]
    assert "W5" in run.parse_args([]).only
    text = (BENCH.parent / "configs" / "xor.yaml").read_text()
    assert "learning_rate: 0.01\n" in run.edit_loop.edited(text, "0.01")
    assert run.edit_loop.edited(text, "0.01").count("learning_rate") == text.count("learning_rate")
    lines = run.edit_loop.lines({"commands": [6.0, 5.0, 7.0], "watch": [2.0, 1.5, 3.0]})
    assert "| separate `dlrecap train` commands (start to exit) | 6.00 |" in lines
    assert "| `dlrecap train --watch` (save to `completed`) | 2.00 |" in lines
    assert "- --watch is 3.00x faster per edit than separate commands" in lines
    assert lines[-2].endswith("2.00 s, met")
    slow = run.edit_loop.lines({"commands": [6.0], "watch": [3.0]})
    assert slow[-2].endswith("3.00 s, **missed** by 0.50 s")
    ctx = _context(("W1",))
    ctx.edit_loop = lines
    assert "### W5: the edit loop" in report.render(ctx) and lines[2] in report.render(ctx)
