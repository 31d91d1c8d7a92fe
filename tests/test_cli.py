"""Tests for the `dlrecap` command line: exit codes, stdout vs stderr, JSON, no tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dlrecap.data import DATASETS

from helpers import ENV, invoke, write_prices

ROOT = Path(__file__).resolve().parents[1]
DLRECAP = Path(sys.executable).parent / "dlrecap"

TINY = """\
data:
  dataset: xor
  samples: 40
model:
  layers: [4]
training:
  epochs: 3
  batch_size: 8
"""
# Plain SGD with a huge step on unscaled regression data overflows within a few epochs.
DIVERGES = """\
data:
  dataset: linear
  samples: 40
  standardize: false
model:
  layers: []
training:
  optimizer: sgd
  learning_rate: 100
  epochs: 30
  batch_size: 8
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def assert_clean_failure(result, code: int = 2) -> None:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    assert result.stderr.startswith("error: ")
    assert result.stdout == ""


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny finished run: (runs directory, run directory)."""
    folder = tmp_path_factory.mktemp("cli")
    config = write(folder, "tiny.yaml", TINY)
    runs = folder / "runs"
    result = invoke("train", str(config), "--runs-dir", str(runs))
    assert result.exit_code == 0, result.output
    run_dir = Path(result.stdout.strip().splitlines()[-1])
    return runs, run_dir, result


# --- train -------------------------------------------------------------------------------


@pytest.mark.slow
def test_train_writes_a_run_and_prints_its_path_last(trained):
    runs, run_dir, result = trained
    assert run_dir.parent == runs and run_dir.name.startswith("tiny-")
    assert {p.name for p in run_dir.iterdir()} >= {
        "config.yaml", "model.keras", "history.csv", "metrics.json"}
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["epochs_run"] == 3
    # results (the metrics table, the path) on stdout; progress on stderr
    assert "validation" in result.stdout and "accuracy" in result.stdout
    assert "epoch 3/3" in result.stderr and "epoch" not in result.stdout
    assert "trained 3 epochs" in result.stderr


def test_one_epoch_is_said_in_the_singular(tmp_path):
    config = write(tmp_path, "tiny.yaml", TINY)
    result = invoke("train", str(config), "--set", "training.epochs=1",
                    "--runs-dir", str(tmp_path / "r"))
    assert result.exit_code == 0, result.output
    assert "trained 1 epoch in " in result.stderr


@pytest.mark.slow
def test_train_quiet_prints_only_the_run_directory(tmp_path):
    config = write(tmp_path, "tiny.yaml", TINY)
    result = invoke("train", str(config), "--quiet", "--runs-dir", str(tmp_path / "r"))
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and Path(lines[0]).is_dir()
    assert Path(lines[0]).parent == tmp_path / "r"


@pytest.mark.slow
def test_train_uses_dlrecap_runs_dir(tmp_path):
    config = write(tmp_path, "tiny.yaml", TINY)
    result = invoke("train", str(config), "-q", "--set", "training.epochs=1",
                    env={"DLRECAP_RUNS_DIR": str(tmp_path / "env-runs")})
    assert result.exit_code == 0, result.output
    assert Path(result.stdout.strip()).parent == tmp_path / "env-runs"


@pytest.mark.slow
def test_diverging_loss_exits_1_naming_the_epoch(tmp_path):
    config = write(tmp_path, "nan.yaml", DIVERGES)
    result = invoke("train", str(config), "--runs-dir", str(tmp_path / "r"))
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    error = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(error) == 1 and "in epoch " in error[0] and "learning_rate" in error[0]
    (run_dir,) = (tmp_path / "r").iterdir()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "failed"
    epoch = int(error[0].split("in epoch ")[1].split(";")[0])
    assert metrics["epochs_run"] == epoch - 1
    assert f"the run is in {run_dir}" in error[0]  # where to look


@pytest.mark.slow
def test_unmet_expectations_exit_3_and_print_each_line(tmp_path):
    text = TINY + 'expect:\n  test_accuracy: ">= 1.01"\n  test_loss: "< 0"\n  train_accuracy: ">= 0"\n'
    config = write(tmp_path, "exp.yaml", text)
    result = invoke("train", str(config), "--runs-dir", str(tmp_path / "r"))
    assert result.exit_code == 3, result.output
    unmet = [line for line in result.stderr.splitlines() if line.startswith("error: expect: ")]
    assert len(unmet) == 2
    assert unmet[0].startswith("error: expect: test_accuracy >= 1.01: got ")
    assert unmet[1].startswith("error: expect: test_loss < 0: got ")
    (run_dir,) = (tmp_path / "r").iterdir()
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "completed"
    assert str(run_dir) in result.stdout


def test_bad_config_exits_2_and_creates_no_run(tmp_path):
    config = write(tmp_path, "bad.yaml", TINY + "  epochz: 3\n")
    result = invoke("train", str(config), "--runs-dir", str(tmp_path / "r"))
    assert_clean_failure(result)
    assert result.stderr.startswith(f"error: {config}:9:3: training.epochz: unknown key 'epochz'")
    assert not (tmp_path / "r").exists()


def test_train_strict_refuses_a_config_with_warnings(tmp_path):
    config = write(tmp_path, "lr.yaml", TINY + "  learning_rate: 5\n")
    result = invoke("train", str(config), "--strict", "--runs-dir", str(tmp_path / "r"))
    assert_clean_failure(result)
    assert "training.learning_rate: 5 is far outside" in result.stderr
    assert not (tmp_path / "r").exists()


def test_progress_numbers_stay_short():
    from dlrecap.console import number

    assert number(0.61234) == "0.6123"
    assert number(1.35465e23) == "1.355e+23"


def test_resume_is_refused_cleanly(tmp_path):
    config = write(tmp_path, "tiny.yaml", TINY)
    result = invoke("train", str(config), "--resume", "x", "--runs-dir", str(tmp_path / "r"))
    assert result.exit_code == 2 and result.stderr.startswith("error: ")
    assert "Traceback" not in result.output


@pytest.mark.slow
def test_train_says_which_epochs_weights_it_kept(trained):
    _, run_dir, result = trained
    assert "trained 3 epochs" in result.stderr
    assert "best epoch" in result.stderr and "kept the weights of epoch 3" in result.stderr
    assert json.loads((run_dir / "metrics.json").read_text())["weights_epoch"] == 3


@pytest.mark.slow
def test_a_starter_config_learns_a_target_in_the_tens_of_thousands(tmp_path):
    data = write_prices(tmp_path / "prices.csv")
    config = tmp_path / "prices.yaml"
    assert invoke("init", str(data), "--target", "price", "--output", str(config)).exit_code == 0
    result = invoke("train", str(config), "--runs-dir", str(tmp_path / "r"))
    assert result.exit_code == 0, result.output
    run_dir = Path(result.stdout.strip().splitlines()[-1])
    m = json.loads((run_dir / "metrics.json").read_text())
    # Guessing the training mean is off by about 2,900: the network must do far better.
    assert m["test"]["mae"] < 0.3 * m["baseline"]["test"]["mae"]
    assert "baseline (test)" in result.stdout
    assert "no better than" not in result.stderr


@pytest.mark.slow
def test_a_model_no_better_than_the_baseline_is_called_out(tmp_path):
    config = ROOT / "configs" / "xor_linear.yaml"
    result = invoke("train", str(config), "--runs-dir", str(tmp_path / "r"))
    assert result.exit_code == 0, result.output
    warned = [line for line in result.stderr.splitlines() if line.startswith("warning: test ")]
    assert len(warned) == 1
    assert "no better than always predicting the majority class" in warned[0]
    assert "baseline (test)" in result.stdout
    run_dir = Path(result.stdout.strip().splitlines()[-1])

    table = invoke("eval", str(run_dir))
    assert table.exit_code == 0, table.output
    assert "baseline" in table.stdout.splitlines()[2]  # the header row: metric, value, baseline
    assert "no better than always predicting the majority class" in table.stderr


# --- eval --------------------------------------------------------------------------------


@pytest.mark.slow
def test_eval_json_of_the_latest_run(trained):
    runs, run_dir, _ = trained
    result = invoke("eval", "--json", "--runs-dir", str(runs))
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == {"run", "split", "metrics", "baseline"}
    assert data["run"] == str(run_dir) and data["split"] == "test"
    assert set(data["metrics"]) == set(data["baseline"]) == {"loss", "accuracy"}
    saved_run = json.loads((run_dir / "metrics.json").read_text())
    assert data["baseline"] == pytest.approx(saved_run["baseline"]["test"])
    saved = saved_run["test"]
    assert data["metrics"]["loss"] == pytest.approx(saved["loss"], rel=1e-5)
    assert data["metrics"]["accuracy"] == pytest.approx(saved["accuracy"])


@pytest.mark.slow
@pytest.mark.parametrize("split", ["validation", "train"])
def test_eval_other_splits_match_metrics_json(trained, split):
    runs, run_dir, _ = trained
    result = invoke("eval", str(run_dir), "--split", split, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    saved = json.loads((run_dir / "metrics.json").read_text())[split]
    assert data["split"] == split
    assert data["metrics"]["loss"] == pytest.approx(saved["loss"], rel=1e-5)


@pytest.mark.slow
def test_eval_by_config_name_and_by_path_give_a_table(trained):
    runs, run_dir, _ = trained
    by_name = invoke("eval", "tiny", "--runs-dir", str(runs))
    by_path = invoke("eval", str(run_dir))
    assert by_name.exit_code == 0 and by_path.exit_code == 0, by_name.output + by_path.output
    assert by_name.stdout == by_path.stdout
    assert str(run_dir) in by_name.stdout and "accuracy" in by_name.stdout
    assert by_name.stderr == ""


def test_eval_with_no_runs(tmp_path):
    result = invoke("eval", "--runs-dir", str(tmp_path / "none"))
    assert_clean_failure(result)
    assert "no runs in" in result.stderr


def test_eval_unknown_run_name(tmp_path):
    result = invoke("eval", "nosuchrun", "--runs-dir", str(tmp_path))
    assert_clean_failure(result)
    assert "'nosuchrun'" in result.stderr


# --- runs, datasets ----------------------------------------------------------------------


@pytest.mark.slow
def test_runs_table(trained):
    runs, run_dir, _ = trained
    result = invoke("runs", "--runs-dir", str(runs))
    assert result.exit_code == 0, result.output
    header = next(line for line in result.stdout.splitlines() if "status" in line)
    for column in ("run", "status", "epochs", "test", "when"):
        assert column in header
    row = next(line for line in result.stdout.splitlines() if run_dir.name in line)
    assert "completed" in row and "accuracy" in row


def test_runs_when_there_are_none(tmp_path):
    result = invoke("runs", "--runs-dir", str(tmp_path / "empty"))
    assert result.exit_code == 0 and result.stdout == ""
    assert "no runs in" in result.stderr


def test_datasets_table():
    result = invoke("datasets")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    for column in ("name", "task", "features", "classes", "rows", "source"):
        assert column in next(line for line in lines if "source" in line)
    for name, info in DATASETS.items():
        row = next(line for line in lines if f" {name} " in line)
        assert info.task in row
    assert {"xor", "circles", "moons", "spiral", "gaussian", "pass_fail", "linear", "sine",
            "iris", "wine", "breast_cancer", "digits", "diabetes"} <= set(DATASETS)


# --- validate, schema --------------------------------------------------------------------


def test_validate_prints_resolved_yaml_on_stdout(tmp_path):
    config = write(tmp_path, "lesson.yaml", TINY)
    result = invoke("validate", str(config), "--set", "training.epochs=7")
    assert result.exit_code == 0, result.output
    data = yaml.safe_load(result.stdout)
    assert data["name"] == "lesson" and data["training"]["epochs"] == 7
    assert data["training"]["optimizer"] == "adam"
    assert result.stderr == ""


def test_validate_warnings_go_to_stderr_and_strict_exits_2(tmp_path):
    text = TINY.replace("layers: [4]", "layers: [{units: 4, activation: linear}]")
    config = write(tmp_path, "lin.yaml", text)
    result = invoke("validate", str(config))
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.stdout)["model"]["layers"][0]["activation"] == "linear"
    assert result.stderr.startswith(f"warning: {config}:5:")
    assert "model.layers: every hidden activation is linear" in result.stderr

    strict = invoke("validate", str(config), "--strict")
    assert strict.exit_code == 2 and strict.stdout == ""
    assert strict.stderr.startswith("error: ") and "--strict" in strict.stderr


def test_validate_error_line_format(tmp_path):
    config = write(tmp_path, "bad.yaml", TINY.replace("layers: [4]", "activation: rleu"))
    result = invoke("validate", str(config))
    assert_clean_failure(result)
    assert result.stderr == (
        f"error: {config}:5:15: model.activation: unknown activation 'rleu' (did you mean 'relu'?)\n")


def test_validate_refuses_the_numpy_engine_where_train_would(tmp_path):
    numpy = TINY.replace("  epochs: 3\n", "  engine: numpy\n  epochs: 3\n")
    config = write(tmp_path, "bn.yaml", numpy.replace("layers: [4]", "layers: [4]\n  batch_norm: true"))
    result = invoke("validate", str(config))
    assert_clean_failure(result)
    assert result.stderr == (f"error: {config}:8:11: training.engine: the numpy engine cannot "
                             "train this config: batch normalization (use auto or fast)\n")
    assert invoke("validate", str(write(tmp_path, "ok.yaml", numpy))).exit_code == 0


def test_schema_is_a_json_schema_of_the_config():
    result = invoke("schema")
    assert result.exit_code == 0, result.output
    schema = json.loads(result.stdout)
    assert schema["type"] == "object"
    assert schema["required"] == ["data"]
    assert {"name", "seed", "data", "model", "training", "expect"} <= set(schema["properties"])
    assert schema["additionalProperties"] is False
    defs = schema["$defs"]
    assert "enum" in json.dumps(defs["TrainingConfig"]["properties"]["optimizer"])
    assert "sgd" in defs["TrainingConfig"]["properties"]["optimizer"]["enum"]
    expect = schema["properties"]["expect"]
    assert expect["additionalProperties"] is False
    assert any("test" in pattern for pattern in expect["patternProperties"])
    try:
        import jsonschema
    except ImportError:
        return
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(yaml.safe_load(TINY), schema)


# --- usage errors and bad input: `error: ...`, exit 2, never a traceback ------------------


@pytest.mark.parametrize("args", [
    ["train", "x.yaml", "--bogus"],
    ["train"],
    ["validate"],
    ["train", "x.yaml", "--device", "tpu"],
    ["eval", "--split", "holdout"],
    ["nosuchcommand"],
    ["validate", "x.yaml", "--set"],
])
def test_usage_errors(args, tmp_path):
    result = invoke(*args, env={"DLRECAP_RUNS_DIR": str(tmp_path)})
    assert_clean_failure(result)
    assert "--help" in result.stderr


def test_bare_command_shows_the_help():
    result = invoke()
    assert result.exit_code == 2
    assert result.stderr.startswith("Usage: dlrecap") and "error:" not in result.stderr
    assert "validate" in result.stderr


def test_usage_error_with_a_control_character_stays_one_line():
    result = invoke("validate", "x.yaml", "--a\x1eb")
    assert_clean_failure(result)
    assert result.stderr == "error: No such option: --a\\x1eb (see dlrecap validate --help)\n"


@pytest.mark.parametrize("text", [
    "", "- 1\n", "data: [\n", "data:\n\tdataset: xor\n", "data: {dataset: xor}\n1: 2\n",
    "data: {dataset: xor}\nname: 'a b'\n", "data: {dataset: nope}\n",
])
def test_bad_configs_never_show_a_traceback(tmp_path, text):
    config = write(tmp_path, "c.yaml", text)
    for command in ("validate", "train"):
        assert_clean_failure(invoke(command, str(config), "--runs-dir", str(tmp_path / "r"))
                             if command == "train" else invoke(command, str(config)))


def test_missing_config_file(tmp_path):
    result = invoke("validate", str(tmp_path / "nope.yaml"))
    assert_clean_failure(result)
    assert "no such config file" in result.stderr


def test_help_answers():
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("train", "eval", "validate", "schema", "datasets", "runs"):
        assert command in result.stdout


# --- subprocesses: the real console script -----------------------------------------------

_NO_TF = """
import sys
from typer.testing import CliRunner
from dlrecap.cli import app
runner = CliRunner()
for args in {commands!r}:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, (args, result.output)
    assert "tensorflow" not in sys.modules, args
    assert "keras" not in sys.modules, args
print("ok")
"""


def test_commands_that_do_not_train_never_import_tensorflow(tmp_path):
    config = write(tmp_path, "c.yaml", TINY)
    commands = [["validate", str(config)], ["schema"], ["datasets"],
                ["runs", "--runs-dir", str(tmp_path)], ["--help"], ["train", "--help"],
                ["eval", "--help"]]
    done = subprocess.run([sys.executable, "-c", _NO_TF.format(commands=commands)],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, **ENV})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_console_script_bad_config_exit_2(tmp_path):
    config = write(tmp_path, "c.yaml", "data:\n  dataset: xor\nmodel:\n  layers: [0]\n")
    done = subprocess.run([str(DLRECAP), "validate", str(config)], capture_output=True,
                          text=True, timeout=60, env={**os.environ, **ENV})
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == (f"error: {config}:4:12: model.layers[0].units: Input should be "
                           "greater than or equal to 1, got 0\n")


@pytest.mark.slow
def test_console_script_train_quiet_then_eval(tmp_path):
    config = write(tmp_path, "tiny.yaml", TINY)
    env = {**os.environ, **ENV, "DLRECAP_RUNS_DIR": str(tmp_path / "runs")}
    train = subprocess.run([str(DLRECAP), "train", str(config), "--quiet"], capture_output=True,
                           text=True, timeout=300, env=env)
    assert train.returncode == 0, train.stderr
    assert "Traceback" not in train.stderr
    run_dir = Path(train.stdout.strip())
    assert run_dir.is_dir() and train.stdout == f"{run_dir}\n"
    # Evaluating in this process spares a second TensorFlow start-up.
    result = invoke("eval", "--json", env={"DLRECAP_RUNS_DIR": str(tmp_path / "runs")})
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["run"] == str(run_dir)
