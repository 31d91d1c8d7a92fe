"""dlrecap: train dense neural networks from a YAML config file."""

__version__ = "0.1.0"
