"""Property test: malformed CSV files end in a DataError/ConfigError or valid splits, never a crash."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from dlrecap.data import load_splits
from dlrecap.errors import DlrecapError

CELLS = st.one_of(
    st.integers(-10**6, 10**6).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", " ", "NA", "nan", "true", "False", "pass", "fail", "1e400", "-",
                     '"quoted, comma"', '"unterminated', "é", "☃", "\t", "0x1F"]),
    st.text(max_size=6),
)
SEPARATORS = st.sampled_from([",", ";", "\t", ",,"])


@st.composite
def csv_texts(draw) -> str:
    if draw(st.booleans()):  # a well-formed table with a few cells spoiled
        header = ["a", "b", "target"]
        rows = [[str(i % 7), str(i * 0.5), "yes" if i % 3 else "no"] for i in range(40)]
        for _ in range(draw(st.integers(0, 3))):
            rows[draw(st.integers(0, 39))][draw(st.integers(0, 2))] = draw(CELLS)
        sep = ","
    else:
        header = draw(st.lists(st.sampled_from(["a", "b", "target", "", "a", "x y", "ü"]),
                               min_size=0, max_size=4))
        rows = draw(st.lists(st.lists(CELLS, min_size=0, max_size=5), min_size=0, max_size=30))
        sep = draw(SEPARATORS)
    lines = [sep.join(header)] + [sep.join(row) for row in rows]
    if draw(st.booleans()):
        lines.insert(0, "\ufeff")  # a byte-order mark or a stray first line
    return "\n".join(lines) + draw(st.sampled_from(["", "\n", "\r\n", "\x00"]))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=csv_texts(), missing=st.sampled_from(["error", "drop", "mean"]),
       task=st.sampled_from(["auto", "binary", "multiclass", "regression"]))
def test_malformed_csv_gives_a_clear_error_or_valid_splits(tmp_path, text, missing, task):
    path = tmp_path / "data.csv"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    data = SimpleNamespace(dataset=None, path=str(path), target="target", features=None,
                           samples=None, noise=None, validation_split=0.2, test_split=0.2,
                           standardize=True, task=task, missing=missing)
    try:
        splits = load_splits(data, seed=0)
    except DlrecapError as exc:
        event(f"error: {type(exc).__name__}")
        line = exc.render()
        assert line and "\n" not in line and "Traceback" not in line
        return
    event("accepted")
    # Accepted: the splits must be usable as they are.
    assert len(splits.y_train) > 0
    if isinstance(splits.x_train, np.ndarray):
        assert np.isfinite(splits.x_train).all()
