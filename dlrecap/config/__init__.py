"""The config: schema (every default lives there) and the YAML loader with line marks."""

from dlrecap.config.load import load_config, parse_override
from dlrecap.config.schema import Config

__all__ = ["Config", "load_config", "parse_override"]
