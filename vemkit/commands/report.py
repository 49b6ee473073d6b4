"""``vemkit report``: write report.html/report.md for one or more run directories."""

from __future__ import annotations

import argparse
from typing import Any

from vemkit.commands._common import add_command


def add_parser(sub: Any) -> None:
    parser = add_command(
        sub,
        "report",
        help="write report.html/report.md for one or more run directories",
        description="Write a report of one or more run directories: a paper-style table "
        "(method, MACs and params with ratios to the teacher, each metric of eval.json with "
        "its direction), loss and metric curves from metrics.jsonl, sample grids and the "
        "resolved specs. report.html is self-contained (images embedded); report.md has its "
        "PNGs beside it. Runs that differ only in seed (and name/output) make one row with "
        "mean ± std. Run `vemkit eval RUN_DIR` first for MACs/params and final scores.",
        examples="  vemkit report runs/quickstart\n"
        "  vemkit report runs/omgd-s0 runs/omgd-s1 runs/omgd-vem-s0 runs/omgd-vem-s1 "
        "--out reports/ablation --title 'OMGD vs OMGD + VEM'\n",
        func=run,
    )
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories")
    parser.add_argument(
        "--out",
        metavar="DIR",
        help="output folder (default: the run directory for one run, else report/ beside the runs)",
    )
    parser.add_argument("--title", help="report title")


def run(args: argparse.Namespace) -> int:
    from vemkit.report import write_report

    written = write_report(args.run_dirs, args.out, args.title)
    print(f"wrote {written['html']}")
    print(f"wrote {written['md']}")
    return 0
