"""What a run says about its data before training: feature columns a network cannot learn
from (row IDs, constants), and class labels that look like one answer spelled two ways.

Each note is a warning line that names the config key it concerns, with file:line:col, so
that a learner sees where to look; the run still trains.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from dlrecap.data.columns import CONSTANT
from dlrecap.errors import ConfigError

if TYPE_CHECKING:
    from dlrecap.config.load import LoadedConfig
    from dlrecap.data.split import Splits


def warn_about_data(loaded: LoadedConfig, splits: Splits, warn: Callable[[str], None]) -> None:
    """Call `warn` with each note on the data `loaded` trains on."""
    for key, message, fix in [*_unhelpful(loaded, splits), *_spellings(loaded, splits)]:
        warn(loaded.locate(ConfigError(message, key=key, fix=fix)).render())


def _unhelpful(loaded: LoadedConfig, splits: Splits) -> list[tuple[str, str, str]]:
    data = loaded.config.data
    listed = data.features or []
    notes = []
    for column, why in splits.unhelpful.items():
        if why != CONSTANT:  # an ID: worse than useless
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
        groups.setdefault(label.strip().casefold(), []).append(label)
    target = loaded.config.data.target
    return [("data.target",
             f"classes {', '.join(map(repr, labels))} of column {target!r} differ only in case "
             "or spaces, and are learned as different classes",
             "if they are one answer, spell it one way in the data file")
            for labels in groups.values() if len(labels) > 1]
