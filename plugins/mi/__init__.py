"""Built-in mi components."""

from __future__ import annotations


def register(registry) -> None:
    """Add this package's components to ``registry``."""
