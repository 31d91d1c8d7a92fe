"""Cross-validation: K ordinary training runs, each scored on the rows it did not train on.

The layout is `<runs-dir>/<name>-cv-<stamp>/`, holding `cv.json` (the config, the number of
folds and a fingerprint of both), one normal run directory per fold
(`<name>-fold<k>-<stamp>/`, so `dlrecap runs --runs-dir CV_DIR`, `eval` and `report` work on
them) and, once every fold is done, `cv.csv`: each fold's metrics on its held-out rows, then
their mean and standard deviation.

The folds cut the rows outside the configured test split (which stays out of every fold,
untouched): stratified by class for classification, seeded by the config's seed. Each fold
run trains on the other folds' rows, less `data.validation_split` of them held back for
early stopping, and its "test" split is its held-out fold (its splits.npz names the rows).

Running the same command again finds its directory (same resolved config, same K), keeps the
completed folds and trains the others anew.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import logging
import math
import shutil
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from dlrecap import runs
from dlrecap.errors import ConfigError, DataError, DlrecapError, Interrupted, RunError

if TYPE_CHECKING:
    import numpy as np

    from dlrecap.config.load import LoadedConfig
    from dlrecap.data.split import Rows
    from dlrecap.hooks import Warn
    from dlrecap.train.callbacks import Progress

CV_FILE = "cv.json"
CSV_FILE = "cv.csv"


class CvProgress(Protocol):
    """Where cross-validation reports its folds (the CLI prints them)."""

    def fold_started(self, fold: int, folds: int) -> Progress | None: ...

    def fold_finished(self, fold: int, folds: int, run_dir: Path, reused: bool) -> None: ...


@dataclass
class CvResult:
    """A finished cross-validation.

    Args:
        cv_dir: its directory.
        runs: each fold's run directory, fold 1 first.
        scores: each fold's metrics on its held-out rows (metrics.json's `test`).
        baselines: the trivial baseline's metrics on the same rows.
        reused: folds completed by an earlier command and kept.
        kept_out: test rows kept out of every fold.
    """

    cv_dir: Path
    runs: list[Path]
    scores: list[dict[str, float]]
    baselines: list[dict[str, float]]
    reused: int
    kept_out: int

    @property
    def names(self) -> list[str]:
        """The metric names, in the runs' order (`loss` first)."""
        return list(self.scores[0]) if self.scores else []

    def summary(self, scores: list[dict[str, float]] | None = None) -> dict[str, tuple[float, float]]:
        """Each metric's mean and sample standard deviation over the folds."""
        return {name: mean_std([s[name] for s in (self.scores if scores is None else scores) if name in s])
                for name in self.names}


def mean_std(values: list[float]) -> tuple[float, float]:
    """The mean and the sample standard deviation (n - 1; NaN for fewer than two values)."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan
    mean = sum(values) / n
    if n < 2:
        return mean, math.nan
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))


# --- the folds ----------------------------------------------------------------------------


def plan_folds(loaded: LoadedConfig, folds: int) -> tuple[list[Rows], int]:
    """Each fold's row numbers (train, validation, held out, kept-out test) and the kept-out count.

    Raises:
        DlrecapError: `folds` below 2, or above the rows (of the rarest class) to cut.
        DataError, ConfigError: the config's data cannot be loaded or split.
    """
    if folds < 2:  # before any data is read
        raise DlrecapError(f"--folds must be at least 2, got {folds}")
    import numpy as np

    from dlrecap.data import load_splits

    config = loaded.config
    try:
        splits = load_splits(config.data, config.seed)
    except ConfigError as exc:  # a data file's column, say: name the file, line and key
        raise loaded.locate(exc) from None
    assert splits.rows is not None
    train, validation, test = splits.rows[:3]
    pool = np.concatenate([train, validation])
    y = np.concatenate([splits.y_train, splits.y_val])
    order = np.argsort(pool, kind="stable")
    pool, y = pool[order], y[order]
    classified = splits.task != "regression"
    check_folds(folds, y, splits.label_names if classified else None)
    return [_fold_rows(pool, y, held, test, loaded, fold, classified)
            for fold, held in enumerate(_held_out(pool, y, folds, config.seed, classified))], len(test)


def check_folds(folds: int, y: np.ndarray, labels: list[str] | None) -> None:
    """A one-line error when `folds` (at least 2) is over the rows (per class) to cut."""
    import numpy as np

    if labels is None:
        if folds > len(y):
            raise DlrecapError(f"--folds {folds} is more than the {len(y)} rows outside the test "
                               "split", fix=f"use --folds {len(y)} or fewer")
        return
    counts = np.bincount(y, minlength=len(labels))
    rarest = int(np.argmin(counts))
    if folds > counts[rarest]:
        raise DlrecapError(
            f"--folds {folds}: class {labels[rarest]!r} has only {counts[rarest]} row(s) outside "
            "the test split, and stratified folds need one in every fold",
            fix=f"use --folds {max(2, int(counts[rarest]))} or fewer" if counts[rarest] >= 2
            else "add rows of that class")


def _held_out(pool: np.ndarray, y: np.ndarray, folds: int, seed: int,
              classified: bool) -> list[np.ndarray]:
    """Each fold's held-out row numbers: stratified by class when `classified`."""
    from sklearn.model_selection import KFold, StratifiedKFold

    splitter = (StratifiedKFold if classified else KFold)(n_splits=folds, shuffle=True,
                                                          random_state=seed)
    return [pool[held] for _, held in splitter.split(pool.reshape(-1, 1), y)]


def _fold_rows(pool: np.ndarray, y: np.ndarray, held: np.ndarray, test: np.ndarray,
               loaded: LoadedConfig, fold: int, classified: bool) -> Rows:
    """The fold's training part cut into train and validation by `data.validation_split`."""
    import numpy as np
    from sklearn.model_selection import train_test_split

    inside = ~np.isin(pool, held)
    part, y_part = pool[inside], y[inside]
    share = float(loaded.config.data.validation_split or 0)
    n_val = math.floor(share * len(part) + 0.5)
    if n_val == 0:
        return part, part[:0], held, test
    try:
        train, validation = train_test_split(
            part, test_size=n_val, stratify=y_part if classified else None,
            random_state=int(np.random.default_rng([loaded.config.seed, 2, fold]).integers(2**31)))
    except ValueError as exc:  # a class too rare to be in both
        raise DataError(f"fold {fold + 1}: cannot hold validation rows out of its training part: "
                        f"{exc}", fix="use fewer --folds, or set data.validation_split: 0") from None
    return np.sort(train), np.sort(validation), np.sort(held), np.sort(test)


# --- the directory and its state ------------------------------------------------------------


def fingerprint(loaded: LoadedConfig, folds: int) -> str:
    """Identifies "the same cross-validation": same resolved config, same number of folds."""
    data = {"config": loaded.config.resolved(), "folds": folds}
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def find_cv(name: str, print_: str, runs_dir: Path) -> Path | None:
    """The latest cross-validation directory in `runs_dir` with this fingerprint, if any."""
    found = []
    for path in runs_dir.glob(f"{name}-cv-*/{CV_FILE}"):
        try:
            if json.loads(path.read_text(encoding="utf-8")).get("fingerprint") == print_:
                found.append(path.parent)
        except (OSError, ValueError):
            continue
    return max(found, key=lambda p: p.name) if found else None


def fold_name(name: str, fold: int) -> str:
    """The config name of fold `fold` (1-based): its run directories are called so."""
    return f"{name}-fold{fold}"


def _metrics(run: Path) -> dict[str, Any]:
    try:
        return runs.read_metrics(run)
    except RunError:
        return {}


# --- running ------------------------------------------------------------------------------


def run_cv(loaded: LoadedConfig, folds: int, runs_dir: Path, *, fresh: bool = False,
           device: str = "auto", progress: CvProgress | None = None,
           on_warning: Warn | None = None) -> CvResult:
    """Train every fold not yet completed, then write cv.csv.

    Args:
        loaded: the validated config.
        folds: K, at least 2.
        runs_dir: where the cv directory is created or found.
        fresh: start a new directory even if this cross-validation ran before.
        device: `auto`, `cpu` or `gpu`, for every fold.
        progress: sees each fold start and finish.
        on_warning: called with each warning line of the fold runs, or None.

    Raises:
        DlrecapError: bad `folds`, bad data (nothing was written).
        Interrupted: SIGINT/SIGTERM; the completed folds are kept (run again to go on).
    """
    rows, kept_out = plan_folds(loaded, folds)
    name = loaded.config.name or "run"
    print_ = fingerprint(loaded, folds)
    cv_dir = None if fresh else find_cv(name, print_, runs_dir)
    if cv_dir is None:
        cv_dir = runs.create_run_dir(runs_dir, f"{name}-cv")
    now = datetime.now().isoformat(timespec="seconds")
    runs.write_json(cv_dir / CV_FILE, {
        "name": name, "config": str(loaded.source) if loaded.source else None, "folds": folds,
        "fingerprint": print_, "created_at": _read_state(cv_dir).get("created_at", now)})
    done, reused = [], 0
    said: set[str] = set()

    def once(line: str) -> None:  # every fold reads the same data: what it says of it, once
        if on_warning and line not in said:
            said.add(line)
            on_warning(line)

    for fold, fold_rows in enumerate(rows, start=1):
        run_dir, kept = _run_fold(loaded, cv_dir, name, fold, folds, fold_rows, device, progress,
                                  once)
        reused += kept
        done.append(run_dir)
    scores = [_metrics(r).get("test") or {} for r in done]
    baselines = [(_metrics(r).get("baseline") or {}).get("test") or {} for r in done]
    result = CvResult(cv_dir, done, scores, baselines, reused, kept_out)
    runs.write_text(cv_dir / CSV_FILE, cv_csv(result))
    return result


def _read_state(cv_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((cv_dir / CV_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _run_fold(loaded: LoadedConfig, cv_dir: Path, name: str, fold: int, folds: int, rows: Rows,
              device: str, progress: CvProgress | None, on_warning: Warn | None) -> tuple[Path, bool]:
    """The fold's completed run directory, trained now unless an earlier command finished it."""
    from dlrecap.pipeline import train

    fold_config = fold_name(name, fold)
    run_dir = runs.latest_named(cv_dir, fold_config)
    if run_dir is not None and _metrics(run_dir).get("status") == "completed":
        if progress:
            progress.fold_finished(fold, folds, run_dir, True)
        return run_dir, True
    while run_dir is not None:  # an unfinished attempt: it is trained again from scratch
        shutil.rmtree(run_dir)
        run_dir = runs.latest_named(cv_dir, fold_config)
    config = loaded.config.model_copy(update={"name": fold_config, "sweep": None})
    _fresh_keras_state()
    epochs = progress.fold_started(fold, folds) if progress else None
    try:
        result = train(dataclasses.replace(loaded, config=config), cv_dir, device=device,
                       progress=epochs, on_warning=on_warning, rows=rows)
    except Interrupted:
        completed = fold - 1
        raise Interrupted(f"cross-validation interrupted in fold {fold}, with {completed} of "
                          f"{folds} folds completed",
                          fix="run the same command again: it keeps the completed folds") from None
    for line in result.unmet:  # `expect:` judges each held-out fold as a test split
        if on_warning:
            on_warning(f"fold {fold}: expect: {line}")
    if progress:
        progress.fold_finished(fold, folds, result.run_dir, False)
    return result.run_dir, False


def _fresh_keras_state() -> None:
    from dlrecap.train import warm

    # Folds share a process: each builds new compiled functions, which TensorFlow would
    # report as "retracing" although it is expected here.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    warm.ENABLED = True  # a fold reuses the last one's compiled functions
    if "keras" in sys.modules:
        import keras

        keras.backend.clear_session()


# --- the results --------------------------------------------------------------------------


def cv_csv(result: CvResult) -> str:
    """cv.csv: `fold,run,<metric>...`, one row per fold, then `mean` and `std` rows."""
    names = result.names
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["fold", "run", *names])
    for fold, (run_dir, scores) in enumerate(zip(result.runs, result.scores, strict=True), start=1):
        writer.writerow([fold, run_dir.name, *[_cell(scores.get(n)) for n in names]])
    summary = result.summary()
    writer.writerow(["mean", "", *[_cell(summary[n][0]) for n in names]])
    writer.writerow(["std", "", *[_cell(summary[n][1]) for n in names]])
    return buffer.getvalue()


def _cell(value: float | None) -> str:
    return "" if value is None or not math.isfinite(value) else repr(float(value))
