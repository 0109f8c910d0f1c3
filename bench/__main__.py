"""`python -m bench [NAME ...]`: run Jilu's benchmarks and print the results as a table."""

from __future__ import annotations

import argparse
import sys

from bench import Row, discover, format_table


def main(argv: list[str] | None = None) -> int:
    benchmarks = discover()
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Run Jilu's benchmarks (modules of bench/) and print one table of results.",
    )
    parser.add_argument(
        "names", nargs="*", metavar="NAME", help=f"benchmarks to run (default: all of {', '.join(benchmarks)})"
    )
    parser.add_argument(
        "--strict", action="store_true", help="exit with status 1 when a measurement misses its target, too"
    )
    args = parser.parse_args(argv)
    unknown = [name for name in args.names if name not in benchmarks]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(benchmarks)}")

    rows: list[Row] = []
    broken = False
    for name in args.names or list(benchmarks):
        print(f"bench: running {name} ...", file=sys.stderr, flush=True)
        try:
            rows.extend(benchmarks[name].run())
        except Exception as exc:  # noqa: BLE001 - one broken benchmark must not hide the others
            broken = True
            rows.append(Row(f"{name}: could not run", f"{type(exc).__name__}: {exc}", ok=False))
    print(format_table(rows))
    missed = any(row.ok is False for row in rows)
    return 1 if broken or (args.strict and missed) else 0


if __name__ == "__main__":
    sys.exit(main())
