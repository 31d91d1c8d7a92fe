"""Write configs/data/imbalanced.csv: 2,000 customers, 8% of whom churned (the rare class).

Deterministic (NumPy seed 0), so the file and the measurements in docs/metrics.md can be
made again: `python bench/make_imbalanced.py`. The churners' features overlap the others'
heavily, so a network trained without class weights predicts "yes" seldom and misses
most churners; `training.class_weight: balanced` trades precision for their recall.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

ROWS = 2000
SHARE = 0.08
OUT = Path(__file__).resolve().parent.parent / "configs" / "data" / "imbalanced.csv"


def rows(seed: int = 0) -> list[tuple[float, float, float, int, str]]:
    """`(tenure_months, monthly_spend, support_calls, late_payments, churned)` per customer."""
    rng = np.random.default_rng(seed)
    churned = np.zeros(ROWS, dtype=bool)
    churned[rng.choice(ROWS, size=round(SHARE * ROWS), replace=False)] = True
    tenure = np.clip(rng.normal(np.where(churned, 18, 30), 12), 1, 72)
    spend = rng.normal(np.where(churned, 75, 65), 20)
    calls = rng.poisson(np.where(churned, 2.5, 1.5))
    late = rng.poisson(np.where(churned, 1.0, 0.5))
    return [(round(float(t), 1), round(float(s), 2), float(c), int(la), "yes" if y else "no")
            for t, s, c, la, y in zip(tenure, spend, calls, late, churned, strict=True)]


def main() -> None:
    with OUT.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["tenure_months", "monthly_spend", "support_calls", "late_payments",
                         "churned"])
        writer.writerows(rows())
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
