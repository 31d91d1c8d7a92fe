"""Read a YAML config, apply `--set` overrides, validate it, and point errors at file:line:col.

PyYAML's composed nodes carry line/column marks; we walk them alongside the constructed
data so that any key path (`model.layers[0].activation`) maps back to where it was written.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import to_jsonable_python

from dlrecap.catalog import DATASETS, SYNTHETIC
from dlrecap.config import choices, guard
from dlrecap.config.checks import check_task
from dlrecap.config.schema import Config, DataConfig
from dlrecap.errors import ConfigError
from dlrecap.vocab import DEFAULT_SAMPLES

KeyPath = tuple[str | int, ...]

_NAME_MAX = 80  # Config.name's pattern allows 80 characters
_KEY_PART = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)((?:\[\d+\])*)")


def dotted(path: KeyPath) -> str:
    """`('model', 'layers', 0, 'units')` -> `model.layers[0].units`."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


@dataclass(frozen=True)
class LoadedConfig:
    """A validated config plus where each of its values was written.

    `locate` turns a `ConfigError` that only names a key (raised later, for example when
    the task of a data file turns out to be regression) into one that names file:line:col.
    """

    config: Config
    source: Path | None
    marks: dict[KeyPath, tuple[int, int]] = field(default_factory=dict)
    overrides: dict[KeyPath, str] = field(default_factory=dict)

    def locate(self, error: ConfigError) -> ConfigError:
        if error.source is not None or error.key is None:
            return error
        path = _split_key(error.key)
        for n in range(len(path), 0, -1):
            if path[:n] in self.overrides:
                error.source = self.overrides[path[:n]]
                return error
        # `--set data.dataset.x=3` replaced the value at `data.dataset`: blame the override.
        below = [k for k in self.overrides if k[:len(path)] == path]
        if path and below:
            error.source = self.overrides[below[-1]]
            return error
        error.source = str(self.source) if self.source else None
        for n in range(len(path), -1, -1):
            if path[:n] in self.marks:
                error.line, error.col = self.marks[path[:n]]
                break
        return error


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> LoadedConfig:
    """Load, override and validate a config file.

    Args:
        path: the YAML file.
        overrides: `KEY=VALUE` strings; VALUE is YAML (`--set model.layers=[16,16]`).

    Raises:
        ConfigError: with file:line:col and the dotted key of the first problem.
    """
    path = Path(path)
    source = str(path)
    text = guard.read_text(path, source)
    raw, marks, key_marks = _parse_yaml(text, source)
    override_sources: dict[KeyPath, str] = {}
    for item in overrides:
        key_path, value = parse_override(item)
        _assign(raw, key_path, value, item)
        override_sources[key_path] = f"--set {item}"
    if raw.get("name") is None:
        stem = re.sub(r"[^A-Za-z0-9._-]", "-", path.stem).lstrip("._-")[:_NAME_MAX]
        raw["name"] = stem or "run"
    data = raw.get("data")
    if isinstance(data, dict) and isinstance(data.get("path"), str):
        data["path"] = str((path.parent / data["path"]).resolve())

    # Locating an error needs only the marks: an unvalidated placeholder stands in for the config.
    placeholder = Config.model_construct(data=DataConfig.model_construct())
    loaded = LoadedConfig(placeholder, path, marks, override_sources)
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        raise loaded.locate(_first_error(exc, raw, key_marks, loaded)) from None
    try:
        config = _check_and_fill(config)
    except ConfigError as exc:
        raise loaded.locate(exc) from None
    return LoadedConfig(config, path, marks, override_sources)


def parse_override(text: str) -> tuple[KeyPath, Any]:
    """Split `model.layers[0].units=16` into its key path and YAML-parsed value."""
    where = f"--set {text}"
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError("expected KEY=VALUE, e.g. training.learning_rate=0.01", source=where)
    try:
        path = _parse_key(key.strip())
    except ValueError:
        raise ConfigError(
            f"bad key {key.strip()!r}", source=where, fix="write it as section.key or key[0]"
        ) from None
    try:
        prepare = functools.partial(_label_keys_below, path=path)
        parsed = guard.safe_load(value, where, prepare) if value.strip() else None
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or "invalid YAML"
        # Text such as `>= 0.9` means something else to YAML: quoting it makes it plain text.
        fix = f"""for text, quote it: {key.strip()}='"{value}"'""" if '"' not in value else None
        raise ConfigError(f"value is not valid YAML: {problem}", source=where, fix=fix) from None
    return path, parsed


def _parse_key(key: str) -> KeyPath:
    path: list[str | int] = []
    for part in key.split("."):
        match = _KEY_PART.fullmatch(part)
        if not match:
            raise ValueError(key)
        path.append(match.group(1))
        path.extend(int(i) for i in re.findall(r"\[(\d+)\]", match.group(2)))
    return tuple(path)


def _split_key(key: str) -> KeyPath:
    """Like `_parse_key`, but accepts any key text (keys from the file may be any string)."""
    return tuple(int(index) if index else name
                 for index, name in re.findall(r"\[(\d+)\]|([^.\[\]]+)", key))


def _assign(raw: dict[str, Any], path: KeyPath, value: Any, text: str) -> None:
    """Set `value` at `path` inside `raw`, making the sections and lists on the way."""
    where = f"--set {text}"
    node: Any = raw
    for i in range(len(path) - 1):
        node = _child(node, path[:i + 1], path[i + 1], where)
    _set_last(node, path, value, where)


def _child(node: Any, here: KeyPath, nxt: str | int, where: str) -> Any:
    """The container at the end of `here`, made (or widened from a shorthand) as `nxt` needs."""
    part = here[-1]
    if isinstance(part, int):
        if not isinstance(node, list) or part >= len(node):
            raise ConfigError(f"{dotted(here)} does not exist", source=where)
        if node[part] is None or (type(node[part]) is int and not isinstance(nxt, int)):
            node[part] = {"units": node[part]} if type(node[part]) is int else {}
        return node[part]
    if not isinstance(node, dict):
        raise ConfigError(f"{dotted(here[:-1])} is not a section", source=where)
    if node.get(part) is None and isinstance(nxt, int):
        # `model.layers[0].units=4` on a file without layers edits the default layers
        default = _schema_default(here)
        node[part] = default if isinstance(default, list) else []
    elif not isinstance(node.get(part), (dict, list)):
        node[part] = [] if isinstance(nxt, int) else {}
    return node[part]


def _set_last(node: Any, path: KeyPath, value: Any, where: str) -> None:
    last = path[-1]
    if isinstance(last, int):
        if not isinstance(node, list) or last > len(node):
            raise ConfigError(f"{dotted(path)} does not exist", source=where)
        if last == len(node):
            node.append(value)
        else:
            node[last] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise ConfigError(f"{dotted(path[:-1])} is not a section", source=where)


def _schema_default(path: KeyPath) -> Any:
    """The schema's default at a key path, as plain data; None where there is none."""
    cls: type[BaseModel] | None = Config
    value: Any = None
    for part in path:
        info = cls.model_fields.get(part) if cls and isinstance(part, str) else None
        if info is None:
            return None
        value = info.get_default(call_default_factory=True)
        cls = _model_in(info.annotation)
    return to_jsonable_python(value, exclude_none=True)


def _parse_yaml(text: str, source: str):
    try:
        # The reader rejects control characters as soon as it is made: keep it in the `try`.
        loader = yaml.SafeLoader(text)
    except yaml.reader.ReaderError as exc:
        before = text[:exc.position]
        raise ConfigError(
            f"invalid YAML: character U+{exc.character:04X} is not allowed", source=source,
            line=before.count("\n") + 1, col=exc.position - before.rfind("\n"), fix="remove it",
        ) from None
    try:
        guard.check_events(text, source)
        node = loader.get_single_node()
        if node is not None:
            guard.check_expansion(node, source)
        marks: dict[KeyPath, tuple[int, int]] = {}
        key_marks: dict[KeyPath, tuple[int, int]] = {}
        if node is not None:
            _walk(node, (), marks, key_marks, source)
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = (exc.problem or exc.context or "invalid YAML").strip()
        if "\\t" in problem or "tab" in problem:
            problem += "; indent with spaces, not tabs"
        raise ConfigError(
            f"invalid YAML: {problem}",
            source=source,
            line=mark.line + 1 if mark else None,
            col=mark.column + 1 if mark else None,
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", source=source) from None
    finally:
        loader.dispose()
    if data is None:
        raise ConfigError("the config is empty", source=source, fix="start from configs/xor.yaml")
    if not isinstance(data, dict):
        raise ConfigError(
            f"the config must be a mapping of keys, not a {type(data).__name__}",
            source=source, line=1, col=1,
        )
    return data, marks, key_marks


# Mappings keyed by class label: `1:` or `yes:` there names the label as written, not a
# number or a boolean.
LABEL_KEYED: tuple[KeyPath, ...] = (("training", "class_weight"),)


def _keys_as_text(node: yaml.MappingNode) -> None:
    for key_node, _ in node.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
            key_node.tag = "tag:yaml.org,2002:str"


def _label_keys_below(node: yaml.Node, path: KeyPath) -> None:
    """Keep label keys as text in a `--set` value at `path` that holds a `LABEL_KEYED` mapping."""
    for keyed in LABEL_KEYED:
        if keyed[:len(path)] == path:
            found = _node_at(node, keyed[len(path):])
            if isinstance(found, yaml.MappingNode):
                _keys_as_text(found)


def _node_at(node: yaml.Node | None, parts: KeyPath) -> yaml.Node | None:
    for part in parts:
        if not isinstance(node, yaml.MappingNode):
            return None
        node = next((v for k, v in node.value
                     if isinstance(k, yaml.ScalarNode) and k.value == part), None)
    return node


def _walk(node: yaml.Node, path: KeyPath, marks, key_marks, source: str) -> None:
    marks[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        if path in LABEL_KEYED:
            _keys_as_text(node)
        seen: set[str] = set()
        for key_node, value_node in node.value:
            # The tag, not the text: `1:` and `null:` are scalars that construct to non-strings.
            plain = isinstance(key_node, yaml.ScalarNode) and key_node.tag == "tag:yaml.org,2002:str"
            key = key_node.value if plain or key_node.tag == "tag:yaml.org,2002:merge" else None
            line, col = key_node.start_mark.line + 1, key_node.start_mark.column + 1
            if key == "<<":  # a YAML merge key: the merged keys keep their own marks
                continue
            if not isinstance(key, str):
                raise ConfigError("keys must be plain names", source=source, line=line, col=col)
            if key in seen:
                raise ConfigError(
                    f"duplicate key {key!r}", source=source, line=line, col=col,
                    key=dotted(path + (key,)), fix="keep one of them",
                )
            seen.add(key)
            key_marks[path + (key,)] = (line, col)
            _walk(value_node, path + (key,), marks, key_marks, source)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, path + (i,), marks, key_marks, source)


def _first_error(exc: ValidationError, raw: dict, key_marks, loaded: LoadedConfig) -> ConfigError:
    errors = [(e, _data_path(raw, e["loc"])) for e in exc.errors()]
    first = errors[0][1]
    # A union (`auto` or a list) fails once per alternative: the deepest error, ours before
    # pydantic's, says most (`unknown metric 'acuracy'` rather than `should be 'auto'`).
    err, path = max((pair for pair in errors if pair[1][:len(first)] == first),
                    key=lambda pair: (len(pair[1]), pair[0]["type"] == "value_error"))
    kind = err["type"]
    if kind == "extra_forbidden":
        known = _fields_at(path[:-1])
        name = str(path[-1])
        hint = choices.did_you_mean(name, known)
        fix = None if hint else (f"known keys: {', '.join(known)}" if known else None)
        error = ConfigError(f"unknown key {name!r}{hint}", key=dotted(path), fix=fix)
        if path in key_marks and path not in loaded.overrides:
            error.source = str(loaded.source)
            error.line, error.col = key_marks[path]
        return error
    if kind == "missing":
        return ConfigError("missing required key", key=dotted(path))
    message = err["msg"].removeprefix("Value error, ")
    message = re.sub(r" or instance of \w+", "", message)  # a pydantic class name means nothing here
    if kind == "string_pattern_mismatch" and path == ("name",):
        message = (f"{_show(err['input'])} is not a run name: use at most {_NAME_MAX} letters, "
                   "digits, '.', '_' or '-', starting with a letter or digit")
    elif kind == "too_long":  # the input itself may be huge: say how long, not what
        message = re.sub(r" after validation", "", message)
    elif kind not in ("value_error", "assertion_error") and "input" in err:
        message += f", got {_show(err['input'])}"
    error = ConfigError(message, key=dotted(path) or None)
    if err["loc"][-1:] == ("[key]",) and path in key_marks and path not in loaded.overrides:
        error.source = str(loaded.source)
        error.line, error.col = key_marks[path]
    return error


def _data_path(raw: Any, loc: tuple) -> KeyPath:
    """Keep the parts of a pydantic error location that index into the raw data.

    This drops the names pydantic adds for union members and validator steps.
    """
    path: list[str | int] = []
    node = raw
    for part in loc:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        elif isinstance(part, str) and part.isidentifier() and part[:1].islower() \
                and part not in ("str", "int", "float", "list", "dict", "bool", "literal"):
            # A key that is missing or unknown, or inside a shorthand (`- 8` is {units: 8}):
            # name it, then stop.
            node = None
        else:
            continue
        path.append(part)
        if node is None:
            break
    return tuple(path)


def _fields_at(path: KeyPath) -> list[str]:
    cls: type[BaseModel] | None = Config
    for part in path:
        if isinstance(part, int) or cls is None:
            continue
        info = cls.model_fields.get(part)
        cls = _model_in(info.annotation) if info else None
    return list(cls.model_fields) if cls else []


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) + getattr(annotation, "__metadata__", ()):
        found = _model_in(arg)
        if found:
            return found
    return getattr(annotation, "__origin__", None) and _model_in(annotation.__origin__)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _check_and_fill(config: Config) -> Config:
    """Checks that span several keys, then the defaults that depend on the data set."""
    data = config.data
    _check_one_source(data)
    if data.features == [] and not data.derive:
        raise ConfigError("no feature columns: the network would have no inputs",
                          key="data.features", fix="list at least one column, add data.derive, "
                          "or remove data.features to use all")
    if data.dataset is None:
        _reject_set_keys(data, ("samples", "noise", "recipe"),
                         "applies to built-in synthetic sets only; a data file has its own rows")
        if data.task != "auto":
            check_task(config, data.task)
        return config
    update = _check_built_in(data, data.dataset)
    check_task(config, DATASETS[data.dataset].task if data.task == "auto" else data.task)
    if update:
        config = config.model_copy(update={"data": data.model_copy(update=update)})
    return config


def _check_one_source(data: DataConfig) -> None:
    if (data.dataset is None) == (data.path is None):
        raise ConfigError(
            "give exactly one of data.dataset and data.path", key="data",
            fix="e.g. dataset: xor, or path: students.csv",
        )
    if data.validation_split + data.test_split > 0.9:
        raise ConfigError(
            f"validation_split + test_split = {data.validation_split + data.test_split:g} "
            "leaves too few training rows", key="data.test_split", fix="keep their sum <= 0.9",
        )


def _check_built_in(data: DataConfig, name: str) -> dict[str, Any]:
    """Check the keys a built-in data set allows; return the defaults it fills in."""
    if name not in DATASETS:
        hint = choices.did_you_mean(name, list(DATASETS))
        raise ConfigError(
            f"unknown data set {name!r}{hint}", key="data.dataset",
            fix=None if hint else "`dlrecap datasets` lists them",
        )
    _reject_set_keys(data, ("target",), "applies to data files only, not to built-in sets")
    if name in SYNTHETIC:
        playground = data.recipe == "playground"
        if playground and not DATASETS[name].playground:
            raise ConfigError(
                f"TensorFlow Playground has no {name} set", key="data.recipe",
                fix="its sets are " + ", ".join(n for n, i in DATASETS.items() if i.playground))
        default_noise = 0.0 if playground else DATASETS[name].default_noise
        return {
            "samples": data.samples if data.samples is not None else DEFAULT_SAMPLES,
            "noise": data.noise if data.noise is not None else default_noise,
        }
    _reject_set_keys(data, ("samples", "noise", "recipe"),
                     f"applies to synthetic data sets only; {name} has fixed rows")
    return {}


def _reject_set_keys(data: DataConfig, keys: tuple[str, ...], message: str) -> None:
    for key in keys:
        if getattr(data, key) is not None:
            raise ConfigError(message, key=f"data.{key}", fix="remove it")
