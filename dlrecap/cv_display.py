"""What `dlrecap cv` prints: a line per fold as it ends, then every fold and mean ± std."""

from __future__ import annotations

import math
from pathlib import Path

from dlrecap import console
from dlrecap.baseline import no_better
from dlrecap.cv import CvResult
from dlrecap.runs import read_metrics


class FoldNotes:
    """A line per fold on stderr; on a terminal, each fold's live epoch bar as well."""

    def fold_started(self, fold: int, folds: int) -> console.EpochProgress | None:
        if not console.err.is_terminal:  # piped: one line per fold, not twenty
            return None
        console.note(f"fold {fold}/{folds}")
        return console.EpochProgress()

    def fold_finished(self, fold: int, folds: int, run_dir: Path, reused: bool) -> None:
        held_out = read_metrics(run_dir).get("test") or {}
        scores = "  ".join(f"{k} {console.number(v)}" for k, v in held_out.items())
        kept = ", completed before: kept" if reused else ""
        console.note(f"fold {fold}/{folds}  {scores}  ({run_dir.name}{kept})")


def print_cv(result: CvResult) -> None:
    """The table of every fold's held-out scores, mean ± std and the baseline's mean."""
    names = result.names
    summary = result.summary()
    rows = [[str(fold), run.name, *[scores.get(n) for n in names]]
            for fold, (run, scores) in enumerate(zip(result.runs, result.scores, strict=True), 1)]
    rows.append(["mean ± std", "", *[f"{console.number(m)} ± {console.number(s)}"
                                     for m, s in (summary[n] for n in names)]])
    baseline = {n: m for n, (m, _) in result.summary(result.baselines).items()}
    if all(math.isfinite(baseline.get(n, math.nan)) for n in names):
        rows.append(["baseline (mean)", "", *[baseline[n] for n in names]])
    console.table(f"{len(result.runs)}-fold cross-validation, scored on each held-out fold",
                  ["fold", "run", *names], rows)
    if result.kept_out:
        console.note(f"the {result.kept_out} test rows were kept out of every fold")
    if result.reused:
        console.note(f"{result.reused} fold(s) were completed before and kept")
    means = {n: m for n, (m, _) in summary.items()}
    if verdict := no_better(means, baseline):
        console.warning(f"mean held-out {verdict}")
