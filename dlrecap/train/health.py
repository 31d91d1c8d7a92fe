"""Training-health diagnostics: dead and saturated units, gradient norms, plain warnings.

After each epoch `HealthMonitor` runs one compiled pass over a small sample of rows: the
forward pass records every Dense layer's pre-activations, the backward pass gives each
layer's gradient norm. The numbers go to `diagnostics.csv` (the report shows them);
conditions that usually mean training is in trouble become one-line warnings a learner can
act on.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np

from dlrecap import runs
from dlrecap.train.callbacks import weights_current
from dlrecap.vocab import SATURATED_ROWS, SATURATION_MARGIN

MAX_ROWS = 256
# A ReLU unit is dead when no sample row makes it positive; a layer is "mostly dead" above this.
DEAD_WARN = 0.5
# A sigmoid/tanh unit is saturated when its output is within SATURATION_MARGIN of a bound
# on SATURATED_ROWS of the rows: beyond these pre-activations.
SATURATED_WARN = 0.5
SATURATION_Z = {"sigmoid": math.log((1 - SATURATION_MARGIN) / SATURATION_MARGIN),
                "tanh": math.atanh(1 - SATURATION_MARGIN)}
# A hidden layer's gradient norm this far below the output layer's means it barely learns.
VANISH_RATIO = 1e-3
EXPLODE_NORM = 1e4
COLUMNS = ["epoch", "layer", "name", "activation", "units", "dead_share", "saturated_share",
           "grad_norm"]


class HealthMonitor(keras.callbacks.Callback):
    """Per-layer health after every epoch, written to diagnostics.csv, with warnings.

    Works with any loop that calls `on_train_begin`, `on_epoch_end` and `on_train_end` with
    `self.model` set, as `Model.fit` does. The model must be a plain stack of layers (what
    `dlrecap.model.build_model` makes), after a preprocessing part when it takes a dict of
    columns; for anything else the monitor switches itself off and says so in `warnings`.

    Args:
        x_sample: feature rows to probe, ideally validation rows (at most 256 are used):
            a matrix, or a dict of `(n, 1)` column arrays for a model that takes its
            columns one by one (text columns as strings).
        path: the CSV file to write, normally `<run dir>/diagnostics.csv`.
        y_sample: the targets of `x_sample`, encoded as the loss expects them
            (`dlrecap.model.encode_targets`). Without them no gradient norms are computed.
        loss_fn: the loss, a Keras loss name (`head.loss`) or a callable `(y_true, y_pred)`.
        every: probe every N-th epoch (the last epoch is always probed).
        on_warning: called with each new warning line as soon as it appears.
        seed: picks the sample rows when `x_sample` has more than 256.
        append: keep the rows already in `path` instead of starting afresh.
        keep_until: a resumed run's epoch (its checkpoint's): keep the rows already in
            `path` up to it and drop later ones, which the run trains again.

    The file is rewritten atomically after a probe (at most every `WRITE_EVERY_S` between
    epochs whose weights the model does not hold), so that a crash at any moment leaves a
    whole file.

    Example:

    ```python
    monitor = HealthMonitor(x_val, run_dir / "diagnostics.csv", y_sample=y_val_encoded,
                            loss_fn=head.loss)
    model.fit(..., callbacks=[monitor])
    print(monitor.warnings)
    ```
    """

    # It probes at `reads_weights` epochs only: where the model is current, or inside the
    # engine's call (`graph_probe`).
    chunk_safe = True
    WRITE_EVERY_S = 0.5
    # Set by an engine that walks the model as a plain stack of Dense layers itself and
    # hands over the probe's values (`probed`): the check on a few rows is then not needed.
    stack_checked = False

    def __init__(
        self,
        x_sample: np.ndarray | dict[str, np.ndarray],
        path: str | os.PathLike[str],
        y_sample: np.ndarray | None = None,
        loss_fn: str | Callable[..., Any] | None = None,
        *,
        every: int = 1,
        on_warning: Callable[[str], None] | None = None,
        seed: int = 0,
        append: bool = False,
        keep_until: int = 0,
    ):
        super().__init__()
        x_sample = _as_features(x_sample)
        rows = np.arange(_n_rows(x_sample))
        if len(rows) > MAX_ROWS:
            rows = np.sort(np.random.default_rng(seed).choice(rows, MAX_ROWS, replace=False))
        self.x = _take(x_sample, rows)
        self.y = None if y_sample is None or loss_fn is None else np.asarray(y_sample)[rows]
        self.loss_fn = keras.losses.get(loss_fn) if isinstance(loss_fn, str) else loss_fn
        self.path = Path(path)
        self.every = max(1, int(every))
        self.on_warning = on_warning
        self.warnings: list[str] = []
        self.rows: list[dict[str, Any]] = []
        self._seen: set[tuple[str, str]] = set()
        self._probe: Callable[..., tuple[Any, Any, Any]] | None = None
        self._inputs: tuple[Any, ...] = ()  # the probe's arguments, as tensors
        self.probed: tuple[Any, Any, Any] | None = None  # what the engine's call probed
        self._layers: list[tuple[str, str, keras.layers.Dense]] = []
        self._stack: _Stack | None = None
        self._epochs: int | None = None
        # history.csv's way: each row formatted once, the file rewritten whole after a probe.
        self._lines = _kept_lines(self.path, math.inf if append else keep_until)
        self._stale = not append and self.path.is_file()  # rows to drop before training
        self._written = -math.inf  # when the file was last written (time.monotonic)
        self._pending = False  # rows not in the file yet

    # --- the callback interface ---------------------------------------------------------

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        if self._stale:  # a resumed run's rows after its checkpoint: they are trained again
            self._write([])
            self._stale = False
        self._epochs = (self.params or {}).get("epochs")
        self._probe = None
        if _n_rows(self.x) == 0:
            return
        self._layers = _dense_layers(self.model)
        self._stack = _Stack.of(self.model, self._layers)
        if not self._layers or not (self.stack_checked or self._is_plain_stack()):
            self._warn("model", "stack", "diagnostics skipped: the model is not a plain stack "
                       "of Dense layers")
            return
        self._probe = self._make_probe()
        import tensorflow as tf

        self._inputs = tuple(tf.nest.map_structure(tf.constant, part)
                             for part in (self.x, self.y) if part is not None)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if not self.reads_weights(epoch):
            return
        try:
            self.check(epoch + 1)
        except OSError:
            raise  # diagnostics.csv cannot be written (disk full): the run's to report
        except Exception as exc:  # a diagnostic must never end the training it watches
            self._probe = None
            # tf.function prefixes "in user code:" and a trace; the cause is the last line.
            lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
            cause = (lines[-1] if lines else "").removeprefix(f"{type(exc).__name__}: ")
            self._warn("model", "error", f"diagnostics stopped in epoch {epoch + 1}: "
                       f"{type(exc).__name__}: {cause[:200]}")

    def reads_weights(self, epoch: int) -> bool:
        """Whether the end of `epoch` (from 0) is probed: every `every`-th epoch and the last,
        while the monitor is on."""
        if self._probe is None:
            return False
        return (epoch + 1) % self.every == 0 or (self._epochs is not None and epoch + 1 == self._epochs)

    def graph_probe(self) -> tuple[Any, tuple[Any, ...]] | None:
        """The probe and its arguments, for the engine to run inside a call."""
        return (self._probe, self._inputs) if self._probe is not None else None

    # --- the work -----------------------------------------------------------------------

    def check(self, epoch: int) -> list[dict[str, Any]]:
        """Probe the model now, record the rows for `epoch` and raise any new warnings.

        Returns no rows while the monitor is off: before `on_train_begin`, or switched off.
        """
        probe = self._probe
        if probe is None:
            return []
        outputs = probe(*self._inputs) if self.probed is None else self.probed
        active, saturated, norms = (np.asarray(t) for t in outputs)
        new_rows = []
        for i, (label, activation, layer) in enumerate(self._layers):
            units = layer.units
            counts = active[i, :units]
            row = {"epoch": epoch, "layer": label, "name": layer.name,
                   "activation": activation, "units": units,
                   "dead_share": None, "saturated_share": None,
                   "grad_norm": float(norms[i]) if self.y is not None else None}
            # A confident output layer is saturated by design: judge hidden layers only.
            if activation == "relu" and label != "output":
                row["dead_share"] = float(np.mean(counts == 0))
            if activation in SATURATION_Z and label != "output":
                row["saturated_share"] = float(np.mean(saturated[i, :units] >= SATURATED_ROWS))
            new_rows.append(row)
        self.rows += new_rows
        self._judge(epoch, new_rows)
        self._write(new_rows)
        return new_rows

    def _make_probe(self) -> Callable[..., tuple[Any, Any, Any]]:
        import tensorflow as tf

        layers = self._layers
        widest = max(layer.units for _, _, layer in layers)
        thresholds = [SATURATION_Z.get(act, math.inf) for _, act, _ in layers]
        loss_fn = self.loss_fn

        def stats(pre: list[Any]) -> tuple[Any, Any]:
            active, saturated = [], []
            for z, limit in zip(pre, thresholds, strict=True):
                pad = [[0, widest - z.shape[-1]]]
                active.append(tf.pad(tf.reduce_sum(tf.cast(z > 0, tf.int32), axis=0), pad))
                share = tf.reduce_mean(tf.cast(tf.abs(z) > limit, tf.float32), axis=0)
                saturated.append(tf.pad(share, pad))
            return tf.stack(active), tf.stack(saturated)

        # Python loops over a fixed list of layers only: AutoGraph would add a second or
        # more of conversion to every run and change nothing.
        if self.y is None or loss_fn is None:
            @tf.function(reduce_retracing=True, autograph=False)
            def forward_probe(x):
                pre, _ = self._forward(x)
                return (*stats(pre), tf.zeros([len(layers)]))
            return forward_probe

        @tf.function(reduce_retracing=True, autograph=False)
        def probe(x, y):
            variables = [[layer.kernel, *([layer.bias] if layer.use_bias else [])]
                         for _, _, layer in layers]
            with tf.GradientTape() as tape:
                pre, out = self._forward(x)
                loss = tf.reduce_mean(loss_fn(y, out))
            grads = tape.gradient(loss, [v for group in variables for v in group])
            norms, k = [], 0
            for group in variables:
                parts = [tf.reduce_sum(tf.square(tf.cast(g, tf.float32)))
                         for g in grads[k:k + len(group)] if g is not None]
                norms.append(tf.sqrt(tf.add_n(parts)) if parts else tf.constant(0.0))
                k += len(group)
            return (*stats(pre), tf.stack(norms))

        return probe

    def _forward(self, x: Any) -> tuple[list[Any], Any]:
        if self._stack is None:
            raise RuntimeError("the monitor has not seen on_train_begin")
        return self._stack(x)

    def _is_plain_stack(self) -> bool:
        # Check the layer-by-layer walk against the model itself once, on a few rows.
        x = _take(self.x, np.arange(min(8, _n_rows(self.x))))
        try:
            _pre, walked = self._forward(x)
            direct = self.model(x, training=False)
        except Exception:  # a layer that cannot be called alone: not a plain stack
            return False
        walked, direct = np.asarray(walked, "float32"), np.asarray(direct, "float32")
        return walked.shape == direct.shape and np.allclose(walked, direct, rtol=1e-2, atol=1e-3)

    def _judge(self, epoch: int, rows: list[dict[str, Any]]) -> None:
        norms = {r["layer"]: r["grad_norm"] for r in rows if r["grad_norm"] is not None}
        top = norms.get("output")
        # Dead layers pass no gradient down; that is said already, not as "vanishing".
        dead = any((r["dead_share"] or 0) >= DEAD_WARN for r in rows)
        for row in rows:
            layer, where = row["layer"], f"layer {row['layer']}"
            if row["dead_share"] is not None and row["dead_share"] >= DEAD_WARN:
                self._warn(layer, "dead", f"{where}: {row['dead_share']:.0%} of ReLU units never "
                           f"activate (epoch {epoch}); try a lower learning rate or leaky_relu")
            if row["saturated_share"] is not None and row["saturated_share"] >= SATURATED_WARN:
                self._warn(layer, "saturated",
                           f"{where}: {row['saturated_share']:.0%} of {row['activation']} units "
                           f"are saturated (epoch {epoch}), so little gradient passes them; "
                           "standardize the inputs, use a smaller initializer or a lower "
                           "learning rate")
            norm = row["grad_norm"]
            if norm is None or not math.isfinite(norm):
                continue
            if norm > EXPLODE_NORM:
                self._warn(layer, "explode", f"{where}: gradient norm {norm:.2g} (epoch {epoch}): "
                           "gradients explode; lower the learning rate or standardize the data")
            elif not dead and layer != "output" and top and top > 1e-8 and norm < VANISH_RATIO * top:
                self._warn(layer, "vanish", f"{where}: gradient norm {norm:.2g} is "
                           f"{norm / top:.1g} of the output layer's (epoch {epoch}): gradients "
                           "vanish before they reach it; try relu, fewer layers or he_normal")

    def _warn(self, layer: str, kind: str, text: str) -> None:
        if (layer, kind) in self._seen:
            return
        self._seen.add((layer, kind))
        self.warnings.append(text)
        if self.on_warning:
            self.on_warning(text)

    def _write(self, rows: list[dict[str, Any]]) -> None:
        """Add `rows` to the file: rewritten now where the model holds its epoch's weights
        (checkpoints are written there), else at most every `WRITE_EVERY_S`."""
        self._lines += [",".join(_cell(r[c]) for c in COLUMNS) for r in rows]
        self._pending = True
        if weights_current(self.model) or time.monotonic() - self._written >= self.WRITE_EVERY_S:
            self.flush()

    def flush(self) -> None:
        """Rewrite the file with every row so far."""
        runs.write_text(self.path, "\n".join([",".join(COLUMNS), *self._lines]) + "\n")
        self._written, self._pending = time.monotonic(), False

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self._pending:
            self.flush()


def _kept_lines(path: Path, until: float) -> list[str]:
    """The data lines of an earlier diagnostics.csv whose epoch is at most `until`."""
    if until <= 0 or not path.is_file():
        return []
    try:
        with open(path, newline="", encoding="utf-8") as f:
            lines = f.read().splitlines()[1:]
    except (OSError, UnicodeDecodeError):
        return []  # unreadable: start afresh rather than fail the run
    return [line for line in lines if _epoch_of(line) <= until]


def _epoch_of(line: str) -> float:
    try:
        return int(line.split(",", 1)[0])
    except ValueError:
        return math.inf  # a damaged line: dropped


def _dense_layers(model: keras.Model) -> list[tuple[str, str, keras.layers.Dense]]:
    """(label, activation name, layer) of each Dense layer: hidden ones 1, 2, ..., then output."""
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    labelled = []
    for i, layer in enumerate(dense, start=1):
        label = "output" if i == len(dense) else str(i)
        labelled.append((label, str(keras.activations.serialize(layer.activation)), layer))
    return labelled


class _Stack:
    """The model as the monitor walks it: preprocessing, then a stack of layers.

    A model that takes one matrix is walked layer by layer from its input. A model that
    takes its columns one by one (a dict of inputs, text columns one-hot encoded inside)
    first runs a sub-model from its inputs to the first Dense layer's input; the Dense stack
    after it is walked as before.
    """

    def __init__(self, front: keras.Model | None, layers: list[keras.layers.Layer]):
        self.front, self.layers = front, layers

    @classmethod
    def of(cls, model: keras.Model, dense: list[tuple[str, str, keras.layers.Dense]]) -> _Stack:
        layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
        if not dense or not isinstance(model.input, dict):
            return cls(None, layers)
        first = dense[0][2]
        try:
            front = keras.Model(model.input, first.input, name="health_front")
        except Exception:  # the first Dense layer is not on the way from the inputs
            return cls(None, layers)
        return cls(front, layers[layers.index(first):])

    def __call__(self, x: Any) -> tuple[list[Any], Any]:
        """Run the model (inference mode), keeping each Dense pre-activation."""
        from keras import ops

        if self.front is not None:
            x = self.front(x, training=False)
        pre = []
        for layer in self.layers:
            if isinstance(layer, keras.layers.Dense):
                x = ops.cast(x, "float32")
                z = ops.matmul(x, ops.cast(layer.kernel, "float32"))
                if layer.use_bias:
                    z = z + ops.cast(layer.bias, "float32")
                pre.append(z)
                x = layer.activation(z)
            else:
                x = layer(x, training=False)
        return pre, ops.cast(x, "float32")


def _as_features(x: Any) -> np.ndarray | dict[str, np.ndarray]:
    """A float32 matrix, or a dict of columns with text as `str` (TensorFlow rejects objects)."""
    if not isinstance(x, dict):
        return np.asarray(x, dtype="float32")
    return {name: np.asarray(column).astype(str) if np.asarray(column).dtype.kind in "OUS"
            else np.asarray(column, dtype="float32") for name, column in x.items()}


def _n_rows(x: np.ndarray | dict[str, np.ndarray]) -> int:
    return len(next(iter(x.values()), ())) if isinstance(x, dict) else len(x)


def _take(x: np.ndarray | dict[str, np.ndarray], rows: np.ndarray) -> Any:
    return {name: column[rows] for name, column in x.items()} if isinstance(x, dict) else x[rows]


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)

