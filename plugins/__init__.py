"""vemkit's built-in components, registered through the entry point ``vemkit = builtins``
exactly like a third-party plugin. The core (``vemkit``) never imports this package."""
