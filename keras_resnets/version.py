"""The package version (one place; read by pyproject.toml and written into published config.json files)."""

__version__ = "0.1.0"
