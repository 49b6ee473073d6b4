"""The training engine: runs a compiled Program."""
