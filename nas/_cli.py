"""What every command line of ours shares: one-line errors with exit status 2, `--version`,
the name a command goes by (`nas-search` or `python -m nas.search`), the message for a missing
optional extra, and the options several commands take (each written once here, with one help
text and one default).

Torch stays out of this module: building a parser must not load it, so that `--help` and a
usage error answer at once.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import nas
import search_spaces
from nas.storage import DEFAULT_STORAGE

if TYPE_CHECKING:
    from nas.train import Budget

EXIT_BAD_INPUT = 2
# The distribution whose metadata holds the version (built from nas.__version__, its home).
DISTRIBUTION = "nas-spectrum"
# Where the experiment commands write by default: a folder under the one they are started in,
# never a path inside the repository or the installed package.
RESULTS_FOLDER = "results"
DEFAULT_DATASET = "fashion_mnist"
DEFAULT_SPACE = "inception_to_xception"

# Input shape and classes of each built-in dataset, so that a command can cost, check and
# export an architecture without the dataset files (or torch) at hand.
DATASET_SHAPES = {
    "fashion_mnist": ((1, 28, 28), 10),
    "cifar10": ((3, 32, 32), 10),
    "digits": ((1, 8, 8), 10),
}


def fail(message: str) -> int:
    """Print a one-line error (no traceback) and return the bad-input exit status."""
    print(f"error: {' '.join(message.split())}", file=sys.stderr)
    return EXIT_BAD_INPUT


def refusing_bad_input(run: Callable[..., int], *args) -> int:
    """`run(*args)`, with the ValueError that refuses bad input turned into one line, exit 2."""
    try:
        return run(*args)
    except ValueError as error:
        return fail(str(error))


def check_writable(path: Path, option: str, *, makes_folder: bool = False) -> None:
    """Refuse, before any work, an output file that could not be written when the work is done.

    Args:
        path: the file the command will write.
        option: the option that named it, for the message.
        makes_folder: the command creates the file's folder (and its parents) itself, so only
            the nearest folder that exists must be writable.

    Raises:
        ValueError: `path` is a folder, or its folder is missing, a file or not writable.
    """
    if path.is_dir():
        raise ValueError(f"{option} {path} is a folder: name a file")
    folder = path.parent
    if makes_folder:
        folder = next(above for above in (folder, *folder.parents) if above.exists())
    if not folder.is_dir():
        problem = "is a file, not a folder" if folder.exists() else "does not exist"
        raise ValueError(f"folder {folder} of {option} {path} {problem}: name another file")
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise ValueError(f"{option} {path} cannot be written here: name another file")


def package_version() -> str:
    """The installed nas-spectrum's version, as pip reports it; nas.__version__ (which the
    package metadata is built from) when it is not installed, e.g. a source tree run through
    PYTHONPATH."""
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return nas.__version__


def missing_extra(what: str, extra: str) -> str:
    """The one-line refusal of an option whose optional dependencies are not installed."""
    return f"{what} needs the {extra} extra: pip install '{DISTRIBUTION}[{extra}]'"


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line (no usage dump), exit status 2, with
    `--version`.

    Args:
        module: the module `python -m` runs, e.g. "nas.search".
        script: the console script of the same command, e.g. "nas-search"; the usage and the
            errors name whichever of the two was typed.
        **options: what argparse.ArgumentParser takes besides `prog`.
    """

    def __init__(self, *, module: str, script: str, **options) -> None:
        typed = Path(sys.argv[0]).stem if sys.argv and sys.argv[0] else ""
        super().__init__(prog=script if typed == script else f"python -m {module}", **options)
        self.add_argument(
            "--version",
            action="version",
            version=f"{script} {package_version()}",
            help="print the version and exit",
        )

    def error(self, message: str) -> NoReturn:
        sys.exit(fail(f"{message} (see {self.prog} --help)"))


# --- argparse types: a bad value is refused by the parser, in OneLineParser's one line ----


def _whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def whole_number_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number, `minimum` or more."""

    def whole_number(text: str) -> int:
        value = _whole_number(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return whole_number


def port_number(text: str) -> int:
    """An argparse type: a TCP port, 1..65535."""
    port = _whole_number(text)
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be 1-65535, got {port}")
    return port


def positive_seconds(text: str) -> float:
    """An argparse type: a finite number of seconds above 0 (NaN and infinity are refused)."""
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not (math.isfinite(seconds) and seconds > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return seconds


# --- options shared by several commands -----------------------------------------------------


def add_storage_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--storage",
        default=DEFAULT_STORAGE,
        help="Optuna storage URL: sqlite:///FILE, or postgresql+psycopg://user@host/db with the "
        f"postgres extra installed (default {DEFAULT_STORAGE})",
    )


def add_study_option(parser: argparse.ArgumentParser, *, required: bool = False) -> None:
    """--study; a search derives the name when none is given, the readers need one."""
    parser.add_argument(
        "--study",
        required=required,
        default=None,
        help="study name" + ("" if required else " (default SPACE-DATASET)"),
    )


def add_study_data_options(parser: argparse.ArgumentParser, *, when: str = "") -> None:
    """--dataset and --data-dir of a command that trains a stored study's networks: the study
    chose the data, and the options only say where it is now."""
    parser.add_argument(
        "--dataset",
        default=None,
        help=f"{when}where the study's own data is now, if it moved (default: the dataset the "
        "study recorded; a user's data must have the same fingerprint)",
    )
    add_data_dir_option(parser)


def add_space_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--space",
        default=DEFAULT_SPACE,
        help=f"search space: one of {', '.join(search_spaces.names())} (default {DEFAULT_SPACE})",
    )


def add_data_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir", default=None, help="folder holding a built-in dataset's files"
    )


def add_output_options(
    parser: argparse.ArgumentParser, runs_name: str, out_name: str, out_also: str
) -> None:
    """--runs (the resumable log of finished training runs) and --out (the report), both
    under RESULTS_FOLDER of the current folder unless named.

    Args:
        parser: the command's parser.
        runs_name: the log's default file name.
        out_name: the report's default file name.
        out_also: what is written beside the report, for the help text.
    """
    runs = f"{RESULTS_FOLDER}/{runs_name}"
    parser.add_argument(
        "--runs",
        default=runs,
        help="JSON-lines log of finished training runs, appended to as each one ends, so a "
        f"rerun resumes where an interrupted one stopped (default {runs}, in the current "
        "folder)",
    )
    out = f"{RESULTS_FOLDER}/{out_name}"
    parser.add_argument(
        "--out",
        default=out,
        help=f"the report, with {out_also} beside it (default {out}, in the current folder)",
    )


def add_budget_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--budget",
        default="auto",
        help="training budget of each run: auto (the search's, per device and dataset), or "
        "EPOCHSxSIZE images per epoch (e.g. 3x10000, 6xfull)",
    )


def add_device_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)"
    )


def add_seed_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="random seed: the same seed repeats the same run (default 0)",
    )


def device_and_budget(args: argparse.Namespace) -> tuple[str, Budget]:
    """The device and the training budget that --device, --budget and --dataset name.

    Raises:
        ValueError: an unknown or absent device, or a budget that is not "auto" or EPOCHSxSIZE.
    """
    # nas.train loads torch: only once a command runs, never while its parser is built.
    from nas.train import Budget, auto_budget, resolve_device

    device = resolve_device(args.device)
    if args.budget == "auto":
        return device, auto_budget(device, args.dataset)
    return device, Budget.parse(args.budget)
