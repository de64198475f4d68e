"""Run benchmarks: ``python -m benchmarks [NAME …]`` (default: all).

Each ``benchmarks/bench_<name>.py`` exposes ``main()`` and prints a table.
They need PostgreSQL (``DATABASE_URL``, default
``postgres://postgres@127.0.0.1:5432/aurora_bench``) and take minutes.
"""
import importlib
import os
import pkgutil
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/aurora_bench")
    os.environ.setdefault("SECRET_KEY", "benchmark-only")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aurora_billing.settings")
    here = Path(__file__).parent
    available = sorted(m.name[len("bench_"):] for m in pkgutil.iter_modules([str(here)])
                       if m.name.startswith("bench_"))
    if {"-h", "--help"} & set(argv):
        print(__doc__.strip() + f"\n\nAvailable: {', '.join(available)}")
        return 0
    names = argv or available
    unknown = [n for n in names if n not in available]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(available)}", file=sys.stderr)
        return 2
    for name in names:
        print(f"\n== {name} ==", flush=True)
        importlib.import_module(f"benchmarks.bench_{name}").main()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
