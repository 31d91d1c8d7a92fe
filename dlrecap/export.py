"""Export a run's trained model for serving: a SavedModel (TF Serving) or a TFLite file.

Both take the raw feature rows the run was trained on (standardization is inside the model)
and return what `model.keras` returns: class probabilities, or the regression value.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from dlrecap import runs
from dlrecap.errors import DlrecapError, RunError, first_line

FORMATS = ("savedmodel", "tflite")
TFLITE_FILE = "model.tflite"
# What a folder holds when it is an earlier export (and so may be replaced).
_EXPORT_MARKERS = ("saved_model.pb", TFLITE_FILE)


def export_run(run_dir: Path, fmt: str, output: Path | None = None) -> Path:
    """Write the run's model in format `fmt`; return the SavedModel folder or the .tflite file.

    The export is built in a temporary folder beside `output` and renamed into place, so an
    earlier export there is replaced whole or not at all.

    Args:
        run_dir: a run directory holding a trained `model.keras`.
        fmt: `savedmodel` (Keras `model.export`, servable by TF Serving) or `tflite`.
        output: the folder to write (default: `<run_dir>/export/<fmt>`); `tflite` writes
            `model.tflite` in it.

    Raises:
        DlrecapError: an unknown format.
        RunError: the run has no model, or `output` holds something other than an export.
    """
    if fmt not in FORMATS:
        raise DlrecapError(f"unknown export format {fmt!r}", fix=f"use one of: {', '.join(FORMATS)}")
    target = Path(output) if output is not None else run_dir / "export" / fmt
    _check_target(target)
    from dlrecap.evaluate import load_model

    model = load_model(run_dir, device="cpu")  # exporting needs no accelerator
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunError(f"cannot create {target.parent}: {exc.strerror}",
                       fix="choose another --output") from None
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        saved = work / "savedmodel"
        model.export(str(saved), format="tf_saved_model", verbose=False)
        if fmt == "tflite":
            staged = work / "tflite"
            staged.mkdir()
            (staged / TFLITE_FILE).write_bytes(_to_tflite(saved))
        else:
            staged = saved
        # An earlier export waits inside `work` during the swap and goes with it.
        runs.replace_folder(staged, target, old=work / "previous")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target / TFLITE_FILE if fmt == "tflite" else target


def _check_target(target: Path) -> None:
    """Refuse to overwrite anything but an earlier export (or an empty folder)."""
    if target.exists() and not target.is_dir():
        raise RunError(f"{target} exists and is not a folder", fix="choose another --output")
    if target.is_dir() and any(target.iterdir()) \
            and not any((target / marker).is_file() for marker in _EXPORT_MARKERS):
        raise RunError(f"{target} is not empty and holds no earlier export",
                       fix="choose another --output, or empty that folder")


def _to_tflite(saved_model: Path) -> bytes:
    """Convert with TFLite's built-in ops, else with TensorFlow ops as a fallback.

    String inputs (one-hot encoded categories) need the TensorFlow ops fallback, which a
    TFLite runtime must then include (the `tensorflow` package's interpreter does).
    """
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    try:
        return converter.convert()
    except Exception:  # noqa: BLE001 - any converter failure: retry with TF ops allowed
        converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS,
                                               tf.lite.OpsSet.SELECT_TF_OPS]
        try:
            return converter.convert()
        except Exception as exc:
            raise RunError(f"this model cannot be converted to TFLite ({first_line(exc)})",
                           fix="export --format savedmodel") from None
