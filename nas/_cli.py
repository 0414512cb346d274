"""What every command line of ours shares: one-line errors with exit status 2."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

EXIT_BAD_INPUT = 2


def fail(message: str) -> int:
    """Print a one-line error (no traceback) and return the bad-input exit status."""
    print(f"error: {' '.join(message.split())}", file=sys.stderr)
    return EXIT_BAD_INPUT


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line (no usage dump), exit status 2."""

    def error(self, message: str) -> NoReturn:
        sys.exit(fail(f"{message} (see {self.prog} --help)"))


def budget_option(text: str, device: str, dataset: str):
    """The training budget a --budget option names: "auto" (per device) or EPOCHSxSIZE."""
    from nas.train import Budget, auto_budget

    return auto_budget(device, dataset) if text == "auto" else Budget.parse(text)
