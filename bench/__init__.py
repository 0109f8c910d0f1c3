"""Jilu's benchmarks: `make bench` (= `python -m bench`) runs them all and prints one table.

A benchmark is a module in this package whose name does not start with `_` and that has
`run() -> list[Row]`. `python -m bench startup` runs only `bench/startup.py`. Benchmarks
are not tests: pytest never collects them, and a missed target does not fail the run.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType


@dataclass(frozen=True)
class Row:
    """One line of the results table. `ok` is None for a row that has no target."""

    benchmark: str
    measured: str
    target: str = "-"
    ok: bool | None = None


Benchmark = Callable[[], list[Row]]


def discover() -> dict[str, ModuleType]:
    """Every benchmark module of this package, by name, in alphabetical order."""
    found: dict[str, ModuleType] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda info: info.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        if callable(getattr(module, "run", None)):
            found[info.name] = module
    return found


def format_table(rows: Sequence[Row]) -> str:
    """A Markdown-style table: benchmark | measured | target | ok?"""
    header = ("benchmark", "measured", "target", "ok?")
    verdicts = {None: "-", True: "yes", False: "NO"}
    cells = [header] + [(row.benchmark, row.measured, row.target, verdicts[row.ok]) for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(header))]

    def line(values: Sequence[str]) -> str:
        return "| " + " | ".join(value.ljust(width) for value, width in zip(values, widths, strict=True)) + " |"

    separator = "|" + "|".join("-" * (width + 2) for width in widths) + "|"
    return "\n".join([line(cells[0]), separator, *(line(values) for values in cells[1:])])
