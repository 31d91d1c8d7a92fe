"""Limits that keep a hostile config file from hanging dlrecap or exhausting its memory.

A config is a few kilobytes of YAML. Anything far beyond that is refused before it is
parsed: special files (a FIFO blocks, `/dev/zero` never ends), files over `MAX_BYTES`,
nesting deeper than `MAX_DEPTH`, and alias chains that expand past `MAX_NODES` ("billion
laughs"). PyYAML's composer recurses once per nesting level, so depth is checked on the
event stream, before any node is composed.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import yaml

from dlrecap.errors import ConfigError

MAX_BYTES = 1 << 20
MAX_DEPTH = 100
MAX_NODES = 100_000


def read_text(path: Path, source: str, *, max_bytes: int = MAX_BYTES) -> str:
    """The text of a config file, refusing anything but a small regular UTF-8 file."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise ConfigError("no such config file", source=source) from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", source=source) from None
    if stat.S_ISDIR(info.st_mode):
        raise ConfigError("is a directory, not a config file", source=source)
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError("is not a regular file (a pipe, device or socket)", source=source,
                          fix="save the config to a file first")
    try:
        # O_NONBLOCK: should the file be swapped for a FIFO after the check, open() still returns.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", source=source) from None
    if len(data) > max_bytes:
        raise ConfigError(f"is larger than {max_bytes / 2**20:g} MiB, too large for a config",
                          source=source)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text ({exc.reason})", source=source) from None


def safe_load(text: str, source: str,
              prepare: Callable[[yaml.Node], None] | None = None) -> object:
    """`yaml.safe_load` within this module's limits (for `--set` values).

    `prepare` may retag the composed nodes before they are constructed.
    """
    check_events(text, source)
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        check_expansion(node, source)
        if prepare is not None:
            prepare(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def check_events(text: str, source: str) -> None:
    """Refuse YAML nested deeper than MAX_DEPTH, or with more than MAX_NODES nodes as written."""
    depth = nodes = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                raise _limit(f"nested deeper than {MAX_DEPTH} levels", source, event)
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1
        if isinstance(event, yaml.NodeEvent):
            nodes += 1
            if nodes > MAX_NODES:
                raise _limit(f"more than {MAX_NODES:,} values", source, event)


def check_expansion(root: yaml.Node, source: str) -> None:
    """Refuse a composed document whose aliases expand past MAX_NODES, or refer to themselves.

    Each alias counts its whole subtree again, as constructing the document would copy it.
    """
    count = 0
    on_path: set[int] = set()  # the nodes above the current one, to see an alias loop back
    stack: list[tuple[yaml.Node, bool]] = [(root, True)]  # (node, entering?)
    while stack:
        node, entering = stack.pop()
        if not entering:
            on_path.discard(id(node))
            continue
        if id(node) in on_path:
            raise _limit("an alias refers to a node that contains it", source, node)
        count += 1
        if count > MAX_NODES:
            raise _limit(f"aliases expand to more than {MAX_NODES:,} values "
                         "(an alias bomb?)", source, node)
        children = _children(node)
        if children:
            on_path.add(id(node))
            stack.append((node, False))
            stack.extend((child, True) for child in children)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _limit(problem: str, source: str, where: yaml.Event | yaml.Node) -> ConfigError:
    mark = where.start_mark
    return ConfigError(problem, source=source,
                       line=mark.line + 1 if mark else None, col=mark.column + 1 if mark else None,
                       fix="a config is a few dozen keys; check the file")
