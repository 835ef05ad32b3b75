"""Promote the latest approved model from the dev registry into a stage account.

Not implemented yet: the promotion (issue "Cross-account promotion") fills this in. Until
then the command says so and exits non-zero instead of pretending to deploy.
"""

from __future__ import annotations

import sys

NOT_IMPLEMENTED = 1


def main(argv: list[str] | None = None) -> int:
    print("build.py: promotion is not implemented yet", file=sys.stderr)
    return NOT_IMPLEMENTED


if __name__ == "__main__":
    sys.exit(main())
