"""What every command line of ours shares: one-line errors with exit status 2."""

from __future__ import annotations

import sys

EXIT_BAD_INPUT = 2


def fail(message: str) -> int:
    """Print a one-line error (no traceback) and return the bad-input exit status."""
    print(f"error: {' '.join(message.split())}", file=sys.stderr)
    return EXIT_BAD_INPUT
