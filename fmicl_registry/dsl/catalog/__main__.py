"""``python -m fmicl_registry.dsl.catalog [--write | --check] [NAME ...]``: derive the built-in
catalog from scratch and write (``--write``) or compare (``--check``, the default) the shipped
entries."""

from __future__ import annotations

import argparse
import sys

from .regenerate import fresh


def main(argv: list[str] | None = None) -> int:
    """Regenerate or check the shipped catalog entries; the exit code is 1 when ``--check``
    finds one out of date."""
    parser = argparse.ArgumentParser(prog="python -m fmicl_registry.dsl.catalog")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", action="store_true", help="write the entries that changed")
    group.add_argument("--check", action="store_true", help="only say which are out of date")
    parser.add_argument("names", nargs="*", help="catalog names (default: all)")
    args = parser.parse_args(argv)
    stale = 0
    for entry in fresh(args.names or None):
        if entry.current:
            print(f"{entry.name}: current")
            continue
        stale += 1
        if args.write:
            entry.path.write_text(entry.text, encoding="utf-8")
            print(f"{entry.name}: written {entry.path.name}")
        else:
            print(f"{entry.name}: out of date")
    return 1 if stale and not args.write else 0


if __name__ == "__main__":
    sys.exit(main())
