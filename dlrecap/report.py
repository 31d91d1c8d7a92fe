"""`report.html`: one self-contained page about a run, readable offline and fit to hand in.

Everything comes from the run directory's files; the pictures are inlined as base64, and the
page links nothing outside itself. TensorFlow is only imported when pictures are missing and
have to be drawn first.
"""

from __future__ import annotations

import base64
import csv
import html
import json
import zipfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from dlrecap import __version__, animation, neurons, plots, runs
from dlrecap.baseline import baseline_row, run_verdict
from dlrecap.errors import RunError
from dlrecap.vocab import SPLITS, is_per_class, per_class_rows

REPORT_FILE = "report.html"
PICTURES = [
    (plots.LEARNING_CURVES, "Learning curves: training vs validation, best epoch and early stop"),
    (plots.DECISION_BOUNDARY, "Decision boundary: predicted probability over the input plane"),
    (animation.BOUNDARY_GIF, "The boundary as the network trained, every few epochs "
                             "(the surface over the input plane; the last frame is the kept model)"),
    (neurons.NEURONS, "Every hidden unit's activation over the input plane, layer by layer; "
                      "lines are the weights (blue positive, orange negative, thicker when larger)"),
    (neurons.ACTIVATIONS, "Each hidden unit's activations over the training rows "
                          "(red: dead, purple: saturated)"),
    (plots.CONFUSION_MATRIX, "Confusion matrix"),
    (plots.PREDICTIONS, "Predicted vs true"),
]
_CSS = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em;
       color: #222; line-height: 1.45; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f3f3f3; } td.l, th.l { text-align: left; }
tr.best td { background: #e6f4e6; font-weight: 600; }
pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; font-size: 0.88em; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
.muted { color: #666; } .warn { color: #8a4b00; }
"""


@dataclass(frozen=True)
class LayerRow:
    """One row of the model summary.

    Args:
        name: the layer's name.
        kind: its Keras class (`Dense`, `Normalization`, ...).
        activation: the activation of a Dense layer, else "".
        output_shape: for example `(None, 8)`.
        params: trainable parameters, or None when not known.
        formula: how the count comes about, in the lecture's terms.
    """

    name: str
    kind: str
    activation: str
    output_shape: str
    params: int | None
    formula: str


def model_summary(model_path: Path) -> list[LayerRow]:
    """The layers of a saved .keras model, read from its config without loading TensorFlow."""
    with zipfile.ZipFile(model_path) as archive:
        config = json.loads(archive.read("config.json"))
    rows = []
    for layer in config.get("config", {}).get("layers", []):
        kind, spec = layer.get("class_name", "?"), layer.get("config", {})
        name = spec.get("name") or layer.get("name", "?")
        build = (layer.get("build_config") or {}).get("input_shape") or []
        inputs = build[-1] if build else None
        if kind == "InputLayer":
            shape = spec.get("batch_shape") or []
            rows.append(LayerRow(name, kind, "", _shape(shape), 0, "the raw feature rows"))
        elif kind == "Dense":
            units, bias = int(spec["units"]), bool(spec.get("use_bias", True))
            params = (inputs + (1 if bias else 0)) * units if inputs is not None else None
            formula = (f"({inputs} + 1) x {units} = {params}" if bias else
                       f"{inputs} x {units} = {params}") if inputs is not None else ""
            rows.append(LayerRow(name, kind, str(spec.get("activation", "")),
                                 _shape([None, units]), params, formula))
        elif kind == "Normalization":
            rows.append(LayerRow(name, kind, "", _shape(build), 0,
                                 "mean and variance of the training rows, fixed"))
        elif kind == "Dropout":
            rows.append(LayerRow(name, kind, "", _shape(build), 0,
                                 f"drops {spec.get('rate', 0):g} of its inputs while training"))
        else:
            rows.append(LayerRow(name, kind, "", _shape(build), None, ""))
    return rows


def build_report(run_dir: Path, output: Path | None = None, draw_missing: bool = True) -> Path:
    """Write the run's report page and return its path.

    Args:
        run_dir: the run directory.
        output: where to write (default `<run_dir>/report.html`).
        draw_missing: draw the run's pictures first when learning_curves.png is missing.
    """
    run_dir = Path(run_dir)
    info = runs.read_metrics(run_dir)
    info["status"] = runs.shown_status(run_dir, info)
    if draw_missing and not (run_dir / plots.LEARNING_CURVES).is_file():
        plots.draw_run(run_dir)
    title = info.get("name") or run_dir.name
    sections = [
        f"<h1>{_e(title)}</h1><p class='muted'>{_e(str(run_dir))}</p>",
        _overview(info),
        _metrics(info),
        _pictures(run_dir),
        _model(run_dir, info),
        _health(run_dir, info),
        _config(run_dir),
        _history(run_dir, info),
        f"<p class='muted'>dlrecap {_e(__version__)}, "
        f"{datetime.now().isoformat(timespec='seconds')}</p>",
    ]
    page = ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<title>{_e(title)}: dlrecap report</title><style>{_CSS}</style></head>"
            "<body>\n" + "\n".join(s for s in sections if s) + "\n</body></html>\n")
    path = Path(output) if output else run_dir / REPORT_FILE
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        runs.write_text(path, page)
    except OSError as exc:
        raise RunError(f"cannot write {path}: {exc.strerror}", fix="choose another --output") from None
    return path


def _overview(info: dict[str, Any]) -> str:
    rows = info.get("rows") or {}
    facts = [
        ("status", info.get("status")),
        ("task", info.get("task")),
        ("features", ", ".join(info.get("features") or [])),
        ("labels", ", ".join(info.get("labels") or []) or None),
        ("rows", " / ".join(f"{k} {v}" for k, v in rows.items()) or None),
        ("epochs run", info.get("epochs_run")),
        ("best epoch", info.get("best_epoch")),
        ("weights of epoch", info.get("weights_epoch")),
        ("stopped early", info.get("stopped_early")),
        ("monitor", info.get("monitor")),
        ("duration", f"{info['duration_s']:.1f} s" if info.get("duration_s") is not None else None),
        ("engine / device", f"{info.get('engine', '-')} / {info.get('device', '-')}"),
        ("seed", info.get("seed")),
        ("started", info.get("started_at")),
        ("versions", ", ".join(f"{k} {v}" for k, v in (info.get("versions") or {}).items())),
    ]
    body = "".join(f"<tr><th class='l'>{_e(k)}</th><td class='l'>{_e(_fmt(v))}</td></tr>"
                   for k, v in facts if v not in (None, ""))
    error = f"<p class='warn'>{_e(info['error'])}</p>" if info.get("error") else ""
    unhelpful = "".join(f"<p class='warn'>feature {_e(repr(column))}: {_e(why)}</p>"
                        for column, why in (info.get("unhelpful_features") or {}).items())
    return f"<h2>Run</h2>{error}{unhelpful}<table>{body}</table>"


def _metrics(info: dict[str, Any]) -> str:
    splits = [s for s in SPLITS if info.get(s)]
    if not splits:
        return "<h2>Metrics</h2><p class='muted'>no metrics: the run did not finish</p>"
    names = [n for n in info[splits[0]] if not is_per_class(n, info.get("labels"))]
    rows = [[s, *[info[s].get(n) for n in names]] for s in splits]
    if baseline := baseline_row(info, names):
        rows.append(baseline)
    verdict = run_verdict(info)
    warning = f"<p class='warn'>{_e(verdict)}</p>" if verdict else ""
    columns, per_class = per_class_rows(info)
    classes = "<h3>Per class</h3>" + _table(columns, per_class) if per_class else ""
    return "<h2>Metrics</h2>" + _table(["split", *names], rows) + warning + classes


def _pictures(run_dir: Path) -> str:
    figures = []
    for name, caption in PICTURES:
        path = run_dir / name
        if path.is_file():
            data = base64.b64encode(path.read_bytes()).decode("ascii")
            kind = "gif" if path.suffix == ".gif" else "png"
            figures.append(f"<figure><img alt='{_e(caption)}' src='data:image/{kind};base64,{data}'>"
                           f"<figcaption>{_e(caption)}</figcaption></figure>")
    if not figures:
        return "<h2>Pictures</h2><p class='muted'>no pictures (run `dlrecap plot`)</p>"
    return "<h2>Pictures</h2>" + "".join(figures)


def _model(run_dir: Path, info: dict[str, Any]) -> str:
    path = run_dir / runs.MODEL_FILE
    if not path.is_file():
        return "<h2>Model</h2><p class='muted'>no saved model</p>"
    try:
        layers = model_summary(path)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        return f"<h2>Model</h2><p class='warn'>cannot read {_e(str(path))}: {_e(str(exc))}</p>"
    rows = [[r.name, r.kind, r.activation, r.output_shape, r.params, r.formula] for r in layers]
    total = sum(r.params or 0 for r in layers)
    rows.append(["total", "", "", "", total, ""])
    text = ("<p>A Dense layer with <i>n</i> inputs and <i>u</i> units has (<i>n</i> + 1) x "
            "<i>u</i> trainable parameters: one weight per input and one bias, for every unit.</p>")
    return "<h2>Model</h2>" + text + _table(
        ["layer", "type", "activation", "output shape", "parameters", "how"], rows,
        left=(0, 1, 2, 3, 5))


def _health(run_dir: Path, info: dict[str, Any]) -> str:
    # Written by dlrecap.train.health.HealthMonitor (not imported here: it needs TensorFlow).
    rows = _read_csv(run_dir / runs.DIAGNOSTICS_FILE)
    warnings = info.get("warnings") or []
    if not rows and not warnings:
        return ""
    parts = ["<h2>Training health</h2>"]
    parts += [f"<p class='warn'>warning: {_e(w)}</p>" for w in warnings]
    if rows:
        last = rows[-1]["epoch"]
        table = [[r["layer"], r["activation"], r["units"], _share(r["dead_share"]),
                  _share(r["saturated_share"]),
                  float(r["grad_norm"]) if r["grad_norm"] else None]
                 for r in rows if r["epoch"] == last]
        parts.append(f"<p>Epoch {_e(last)}, from a sample of validation rows:</p>")
        parts.append(_table(["layer", "activation", "units", "dead ReLU units",
                             "saturated units", "gradient norm"], table, left=(0, 1)))
    return "".join(parts)


def _config(run_dir: Path) -> str:
    path = run_dir / runs.CONFIG_FILE
    text = path.read_text(encoding="utf-8") if path.is_file() else "(missing)"
    return f"<h2>Config</h2><pre>{_e(text)}</pre>"


def _history(run_dir: Path, info: dict[str, Any]) -> str:
    history = plots.read_history(run_dir)
    if not history.get("epoch"):
        return ""
    columns = list(history)
    best = info.get("best_epoch")
    body = []
    for i, epoch in enumerate(history["epoch"]):
        cells = "".join(f"<td>{_e(_fmt(int(epoch) if c == 'epoch' else history[c][i]))}</td>"
                        for c in columns)
        body.append(f"<tr{' class=best' if epoch == best else ''}>{cells}</tr>")
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    note = f"<p class='muted'>best epoch {best} highlighted</p>" if best else ""
    return f"<h2>History</h2>{note}<table><tr>{head}</tr>{''.join(body)}</table>"


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _table(columns: list[str], rows: list[list[Any]], left: tuple[int, ...] = (0,)) -> str:
    """An HTML table; the columns numbered in `left` are text, aligned left."""
    def cls(i: int) -> str:
        return " class='l'" if i in left else ""

    head = "".join(f"<th{cls(i)}>{_e(c)}</th>" for i, c in enumerate(columns))
    body = "".join("<tr>" + "".join(f"<td{cls(i)}>{_e(_fmt(v))}</td>" for i, v in enumerate(row))
                   + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _shape(shape: list[Any]) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")" if shape else "-"


def _share(text: str) -> str:
    return f"{float(text):.0%}" if text not in (None, "") else "-"


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        # Small losses keep their digits: 0.000123, not 0.0001.
        return f"{value:.4f}" if 0.01 <= abs(value) < 1e5 or value == 0 else f"{value:.3g}"
    return str(value)


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)
