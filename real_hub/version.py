"""The package version, kept in one place (read by processors' pickled state and by cards)."""

__version__ = "0.2.0"
