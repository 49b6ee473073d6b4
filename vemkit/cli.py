"""The ``vemkit`` command.

Each command lives in ``vemkit/commands/<name>.py`` with ``add_parser(subparsers)`` and
``run(args) -> int``. Start-up stays light: torch is imported only by commands that need it.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import signal
import sys
import threading
from collections.abc import Iterator, Sequence

COMMANDS = (
    "validate",
    "schema",
    "plugins",
    "plan",
    "run",
    "profile",
    "eval",
    "report",
    "sweep",
    "data",
    "export",
)

EPILOG = """\
examples:
  vemkit validate specs/quickstart.yaml
  vemkit plan specs/quickstart.yaml --set train.iterations=100
  vemkit run specs/quickstart.yaml
  vemkit -p my_plugin plugins

Plugins load from the entry-point group 'vemkit'. VEMKIT_DISABLE_PLUGIN_AUTOLOAD=1 turns that off;
VEMKIT_PLUGINS=a,b (or -p a -p b) then names the plugins to load.
"""


class _Formatter(argparse.RawDescriptionHelpFormatter):
    pass


def build_parser(commands: Sequence[str] = COMMANDS) -> argparse.ArgumentParser:
    """The argument parser with the sub-commands ``commands`` (all of them by default)."""
    from vemkit import __version__

    parser = argparse.ArgumentParser(
        prog="vemkit",
        description="Compress GAN generators by distillation, with VEM mutual-information "
        "maximisation on top of any baseline method.",
        epilog=EPILOG,
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"vemkit {__version__}")
    parser.add_argument(
        "-p",
        "--plugin",
        action="append",
        default=[],
        metavar="NAME",
        help="load this plugin (entry-point name or module path); repeatable",
    )
    parser.add_argument("--debug", action="store_true", help="show Python tracebacks for errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in commands:
        module = importlib.import_module(f"vemkit.commands.{name}")
        module.add_parser(sub)
        command = sub.choices[name]
        if command.get_default("func") is None:
            command.set_defaults(func=module.run)
    return parser


def _command_in(argv: Sequence[str]) -> str | None:
    """The sub-command named in ``argv``, if it is a known one (options before it skipped)."""
    args = iter(argv)
    for arg in args:
        if arg in ("-p", "--plugin"):
            next(args, None)
        elif not arg.startswith("-"):
            return arg if arg in COMMANDS else None
    return None


class Terminated(KeyboardInterrupt):
    """SIGTERM, the signal a scheduler (Slurm at its time limit, Kubernetes, ``kill``) stops a
    job with, raised where the program is, as Ctrl-C is: a run closes its logs and a sweep
    stops its cells instead of leaving them running without it."""


def stopped(exc: KeyboardInterrupt, hint: str = "") -> int:
    """Say on stderr that a command was stopped (``terminated`` for SIGTERM, ``interrupted``
    for Ctrl-C, ``hint`` after it) and return its exit code: 143 or 130, as a shell reports a
    process those signals ended."""
    terminated = isinstance(exc, Terminated)
    print(("terminated" if terminated else "interrupted") + hint, file=sys.stderr)
    return 128 + (signal.SIGTERM if terminated else signal.SIGINT)


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Within it, SIGTERM raises :class:`Terminated` where the program is, as Ctrl-C raises
    ``KeyboardInterrupt``; the previous handler comes back after. For any program that starts
    sweep cells (the benchmarks too): a cell runs in a session of its own, so only its sweep
    can stop it, and a sweep killed outright would leave it running."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set a handler (vemkit.main called from a thread)
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # Start-up: a command's own parser only (importing and building all ten costs several
    # milliseconds); the full parser for `vemkit --help`, a typo or no command.
    command = _command_in(argv)
    parser = build_parser((command,) if command else COMMANDS)
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 0
    from vemkit import registry
    from vemkit.errors import SpecError, VemkitError

    if args.plugin:
        registry.set_explicit_plugins(args.plugin)
    try:
        with sigterm_interrupts():
            return int(args.func(args) or 0)
    except VemkitError as exc:
        if args.debug:
            raise
        print(str(exc) if isinstance(exc, SpecError) else f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        return stopped(exc)


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
