"""``python -m mealrec.extract video|text ...``: the ``mealrec features`` commands, usable before they are wired into the CLI."""
from __future__ import annotations

import argparse
import sys

from ..utils import MealRecError
from . import add_features_parser


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mealrec.extract")
    sub = parser.add_subparsers(dest="command", required=True)
    add_features_parser(sub)
    args = parser.parse_args(["features", *(sys.argv[1:] if argv is None else argv)])
    try:
        return args.func(args)
    except MealRecError as e:
        print(f"mealrec: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
