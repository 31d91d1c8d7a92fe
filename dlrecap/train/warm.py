"""The last model of a shape, kept between runs in one process with its compiled functions.

Tracing and preparing the fast engine's compiled loop takes about half a second: longer
than training a small network. A process that trains run after run (a sweep's worker,
`train --watch`, the folds of `cv`) keeps its last model: a new run of the same shape copies
its freshly built model's variables (initial weights, standardization, dropout seeds) and
its fresh optimizer's (step count, learning rate, zeroed moments) into the kept one, which
then trains exactly as the fresh one would have, with the functions already compiled for it.

"The same shape" is everything in the config that the compiled functions hold as
constants: the whole config except its name, `expect`, `training.epochs` and, without a
decaying schedule, `training.learning_rate` (a variable of the optimizer); and the data's
row shape (with a decaying schedule, the training rows too: they give its steps per epoch).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import keras

    from dlrecap.config.schema import Config
    from dlrecap.data.split import Splits
    from dlrecap.model import Head

# Switched on by the processes that train many runs; a single run has nothing to reuse.
ENABLED = False
# Schedules under which the learning rate is the optimizer's variable, not a constant.
VARIABLE_RATE = ("constant", "reduce_on_plateau")
_kept: dict[str, keras.Model] = {}


def shape_key(config: Config, splits: Splits, head: Head) -> str:
    """What two runs must share for one to train in the other's model."""
    resolved = config.resolved()
    resolved.pop("name", None)
    resolved.pop("expect", None)
    training = dict(resolved.get("training") or {})
    training.pop("epochs", None)
    rows: dict[str, Any] = {name: [list(a.shape[1:]), str(a.dtype)] for name, a in
                            (("x", splits.x_train), ("y", splits.y_train))}
    rows["validation"] = bool(len(splits.y_val))
    rows["class_weights"] = head.class_weights  # `balanced` ones come from the rows
    schedule = training.get("lr_schedule")
    if (schedule if isinstance(schedule, str) else (schedule or {}).get("name")) in VARIABLE_RATE:
        training.pop("learning_rate", None)
    else:  # a schedule holds the rate and the steps per epoch as constants
        rows["train"] = len(splits.y_train)
    resolved["training"] = training
    return json.dumps({"config": resolved, "rows": rows}, sort_keys=True, default=str)


def adopt(fresh: keras.Model, key: str) -> keras.Model:
    """The kept model of this shape holding `fresh`'s state, or `fresh`, kept from now on.

    Only one model is kept: a process trains one shape after another.
    """
    kept = _kept.get(key)
    if kept is not None and kept is not fresh:
        mine, theirs = _state(kept), _state(fresh)
        if _same_layout(mine, theirs):
            for variable, value in zip(mine, theirs, strict=True):
                variable.assign(value)
            kept.name = fresh.name  # the config's name, which model.keras records
            kept.stop_training = False
            return kept
    _kept.clear()
    _kept[key] = fresh
    return fresh


def forget() -> None:
    """Drop the kept model (before its session is cleared, or to free its memory)."""
    _kept.clear()


def _state(model: keras.Model) -> list[Any]:
    """Every variable a run starts from: the model's, seeds included, then its optimizer's."""
    return [*model.variables, *model.optimizer.variables]


def _same_layout(mine: list[Any], theirs: list[Any]) -> bool:
    return len(mine) == len(theirs) and all(
        tuple(a.shape) == tuple(b.shape) and a.dtype == b.dtype for a, b in zip(mine, theirs, strict=False))
