"""``python -m vemkit`` (used under torchrun)."""

from vemkit.cli import entry

entry()
