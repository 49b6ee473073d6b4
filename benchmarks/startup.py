"""Start-up cost of the CLI: `vemkit --help`, `plugins` and `validate` against bare imports.

Each command runs as a fresh process, the sides alternated, ``--repeats`` times; the table gives
medians and the ratio to ``python -c "import pydantic, yaml, pluggy"`` (target for validate:
at most 2.5x, performance.md), of the wall time and of the CPU time (user + system) of the
process: on a loaded machine the wall time also counts waiting for a core, the CPU time much
less so. A generated 300-line spec checks that validation time does not grow with the length
of a spec. Writes benchmarks/results/startup.json.

    .venv/bin/python benchmarks/startup.py --repeats 7
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VEMKIT = [sys.executable, "-m", "vemkit"]


def long_spec(lines: int = 300) -> str:
    """A valid spec of about ``lines`` lines: the quickstart plus many metrics and loss terms."""
    base = (ROOT / "specs" / "quickstart.yaml").read_text(encoding="utf-8")
    base = base.replace("  metrics: [{type: psnr}, {type: ssim}]\n", "  metrics:\n")
    extra = []
    while len(base.splitlines()) + len(extra) < lines - 4:
        extra += ["    - type: psnr", "    - type: ssim", "    - type: l1"]
    text = base.replace("  metrics:\n", "  metrics:\n" + "\n".join(extra) + "\n")
    return text.replace("root: data/", f"root: {ROOT}/data/")


def timed(cmd: list[str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of one run of ``cmd``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "startup.json"))
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        spec300 = Path(tmp) / "long.yaml"
        spec300.write_text(long_spec(), encoding="utf-8")
        sides = {
            "python -c 'import pydantic, yaml, pluggy'": [
                sys.executable,
                "-c",
                "import pydantic, yaml, pluggy",
            ],
            "vemkit --help": [*VEMKIT, "--help"],
            "vemkit plugins": [*VEMKIT, "plugins"],
            "vemkit validate specs/quickstart.yaml": [*VEMKIT, "validate", "specs/quickstart.yaml"],
            f"vemkit validate <{len(spec300.read_text().splitlines())}-line spec>": [
                *VEMKIT,
                "validate",
                str(spec300),
            ],
        }
        times: dict[str, list[float]] = {k: [] for k in sides}
        cpu: dict[str, list[float]] = {k: [] for k in sides}
        for _ in range(args.repeats):
            for name, cmd in sides.items():  # alternate the sides within each repeat
                wall, used = timed(cmd)
                times[name].append(wall)
                cpu[name].append(used)
    base = statistics.median(next(iter(times.values())))
    base_cpu = statistics.median(next(iter(cpu.values())))
    rows = [
        {
            "command": k,
            "median_s": statistics.median(v),
            "ratio": statistics.median(v) / base,
            "median_cpu_s": statistics.median(cpu[k]),
            "cpu_ratio": statistics.median(cpu[k]) / base_cpu,
        }
        for k, v in times.items()
    ]
    result = {
        "machine": _machine(),
        "repeats": args.repeats,
        "load_average": os.getloadavg(),
        "rows": rows,
    }
    load = result["load_average"][0]
    print(f"start-up, median of {args.repeats} ({result['machine']}, load {load:.2f})\n")
    print("| command | median s | ratio to bare imports | median CPU s | CPU ratio |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| `{r['command']}` | {r['median_s']:.3f} | {r['ratio']:.2f}x "
            f"| {r['median_cpu_s']:.3f} | {r['cpu_ratio']:.2f}x |"
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result


def _machine() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} cores"
    except OSError:
        pass
    return f"{os.cpu_count()} cores"


if __name__ == "__main__":
    main()
