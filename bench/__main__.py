"""Run the benchmarks and print their tables: `python -m bench [--smoke] [--only KEY,...]`."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import platform
import sys
import time

from bench import BENCHMARKS


def _available(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def main(argv: list[str] | None = None) -> int:
    """Run the chosen benchmarks one after another and print a table for each."""
    keys = [key for key, _, _ in BENCHMARKS]
    parser = argparse.ArgumentParser(prog="python -m bench", description=main.__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny runs that take seconds")
    parser.add_argument("--only", default="", help=f"comma-separated subset of {keys}")
    args = parser.parse_args(argv)
    chosen = [key for key in args.only.split(",") if key] or keys
    unknown = sorted(set(chosen) - set(keys))
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; expected some of {keys}")

    mode = "smoke run (tiny sizes, figures not meaningful)" if args.smoke else "full run"
    print(f"# optscan benchmarks: {mode}")
    print(
        f"Python {platform.python_version()} on {platform.machine()},"
        f" {os.cpu_count()} CPUs; command: python -m bench {' '.join(argv or sys.argv[1:])}"
    )
    for key, module, title in BENCHMARKS:
        if key not in chosen:
            continue
        print()
        if not _available(module):
            print(f"### {title}\n\n{title}: not yet available ({module} does not exist yet)")
            continue
        started = time.monotonic()
        tables = importlib.import_module(module).run(smoke=args.smoke)
        for table in tables:
            print(table.markdown())
        print(f"\n({title}: {time.monotonic() - started:.0f} s)")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
