"""What a run says about its data before training: feature columns a network cannot learn
from (row IDs, constants, the target by another name), class labels that look like one
answer spelled two ways, and a numeric target that `data.task: auto` took as classes.

Each note is a warning line that names the config key it concerns, with file:line:col, so
that a learner sees where to look; the run still trains.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from dlrecap.data.columns import IDS
from dlrecap.errors import ConfigError

if TYPE_CHECKING:
    from dlrecap.config.load import LoadedConfig
    from dlrecap.data.split import Splits


def warn_about_data(loaded: LoadedConfig, splits: Splits, warn: Callable[[str], None]) -> None:
    """Call `warn` with each note on the data `loaded` trains on."""
    notes = [*_unhelpful(loaded, splits), *_spellings(loaded, splits),
             *_numbers_as_classes(loaded, splits), *_task_settings(loaded, splits)]
    for key, message, fix in notes:
        warn(loaded.locate(ConfigError(message, key=key, fix=fix)).render())


def _unhelpful(loaded: LoadedConfig, splits: Splits) -> list[tuple[str, str, str]]:
    data = loaded.config.data
    listed = data.features or []
    notes = []
    for column, why in splits.unhelpful.items():
        if why in IDS:  # worse than useless
            why += "; a network can memorize it, and it says nothing about new rows"
        key = f"data.features[{listed.index(column)}]" if column in listed else "data.path"
        fix = "remove it from data.features" if column in listed else \
            "leave it out: list the other columns in data.features"
        notes.append((key, f"column {column!r} of {Path(str(data.path)).name}: {why}", fix))
    return notes


def _spellings(loaded: LoadedConfig, splits: Splits) -> list[tuple[str, str, str]]:
    """Class labels equal but for case and surrounding spaces (`yes`, `Yes`, `yes `): the
    network would learn them as different classes."""
    groups: dict[str, list[str]] = {}
    for label in splits.label_names or []:
        groups.setdefault(spelling(label), []).append(label)
    target = loaded.config.data.target
    return [("data.target",
             f"classes {', '.join(map(repr, labels))} of column {target!r} differ only in case "
             "or spaces, and are learned as different classes",
             "if they are one answer, spell it one way in the data file")
            for labels in groups.values() if len(labels) > 1]


def spelling(label: str) -> str:
    """What labels that mean one answer share: `yes`, `Yes` and ` yes ` give `yes`."""
    return label.strip().casefold()


def whole_numbers(labels: list[str]) -> bool:
    """Whether class labels are whole numbers (a rating, a count), not names."""
    return all(label.lstrip("-").isdigit() for label in labels)


def _numbers_as_classes(loaded: LoadedConfig, splits: Splits) -> list[tuple[str, str, str]]:
    """A data file's target of a few whole numbers that `auto` made more than two classes:
    a rating or a count may be meant as a number, and as classes 4 is as wrong as 1 for a 5."""
    data, labels = loaded.config.data, splits.label_names or []
    if data.path is None or data.task != "auto" or len(labels) <= 2 or not whole_numbers(labels):
        return []
    return [("data.task", f"auto reads column {data.target!r} (whole numbers {labels[0]} to "
             f"{labels[-1]}) as {len(labels)} classes: a near miss counts as wrong as a far one",
             "set data.task: regression to predict it as a number, or multiclass to keep "
             "classes and silence this")]


def _task_settings(loaded: LoadedConfig, splits: Splits) -> list[tuple[str, str, str]]:
    """What the teaching linter says of settings that do not suit the task, for a data file
    whose task `data.task: auto` found only now (`lint` knew every other task before)."""
    from dlrecap.config.lint import task_warnings

    data = loaded.config.data
    if data.path is None or data.task != "auto":
        return []
    return [(key, message, "") for key, message in task_warnings(loaded.config, splits.task)]
