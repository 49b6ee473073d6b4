"""The training engine: compiles a spec into a Program and runs it.

Import-light on purpose: neither this package nor ``vemkit.engine.hookspecs`` (the per-run
contract) nor ``vemkit.engine.run`` imports torch at import time; ``compile`` imports it on
first use::

    import vemkit
    program = vemkit.compile(spec)           # inspect: program.describe()
    result = vemkit.run(spec)                # train; result.run_dir, result.checkpoint
    vemkit.engine.resume("runs/quickstart")  # continue a stopped run exactly
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vemkit.engine import run as _run_module

__all__ = ["compile", "resume", "run"]

# Importing the submodule ``vemkit.engine.run`` binds the package attribute ``run`` to it;
# the public name is the function (``from vemkit.engine.run import ...`` still finds the module).
run = _run_module.run
resume = _run_module.resume

if TYPE_CHECKING:
    from vemkit.engine.program import compile


def __getattr__(name: str) -> Any:
    if name == "compile":
        from vemkit.engine.program import compile

        return compile
    raise AttributeError(f"module 'vemkit.engine' has no attribute {name!r}")
