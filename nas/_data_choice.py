"""The dataset a command line names: a built-in one, or the path of a user's own images.

`--dataset` takes a built-in name (`DATASET_SHAPES`) or a path: a class-per-folder image tree
or an ``.npz`` file (`nas.user_data`). `--image-size` and `--channels` shape a user's images.
`DataChoice` checks these once, cheaply (no torch, no image opened), and is then what every
command asks for the data's shape or the data itself.

What a study stores of its data and how a study is matched with the data of a later run
(`study_data_attrs`, `data_mismatch`), what a run log keys a user's data by (`data_key_of`) and
how class names are shown (`class_names_text`) also live here, so search, workers, export and
the dashboard agree on them.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from nas._cli import DATASET_SHAPES, DEFAULT_DATASET, add_data_dir_option

if TYPE_CHECKING:
    from nas.data import Dataset

# The exported docstring and the dashboard name this many classes; ImageNet's 1000 would
# fill a page.
MAX_CLASSES_SHOWN = 20
MIN_IMAGE_SIDE = 8  # the skeleton's three stride-2 stages need 8 pixels to end at 1 x 1
MAX_IMAGE_SIDE = 4096
CHANNELS = (1, 3)


@dataclass(frozen=True)
class DataChoice:
    """`--dataset`, `--data-dir`, `--image-size` and `--channels`, checked.

    Attributes:
        dataset: a built-in name, or the path as the user gave it.
        data_dir: where a built-in dataset's files are (None: the usual places).
        image_size: a user dataset's images are resized and centre-cropped to this side.
        channels: a user dataset's images are converted to 1 (grey) or 3 (RGB) channels.
    """

    dataset: str
    data_dir: str | None = None
    image_size: int | None = None
    channels: int | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> DataChoice:
        """The choice a parsed command line makes (options it lacks count as not given).

        Raises:
            ValueError: one line: a name that is neither built-in nor a file or folder, or
                image options given for a built-in dataset.
        """
        choice = cls(
            dataset=args.dataset,
            data_dir=getattr(args, "data_dir", None),
            image_size=getattr(args, "image_size", None),
            channels=getattr(args, "channels", None),
        )
        choice.check()
        return choice

    def check(self) -> None:
        """Raise a one-line ValueError when the choice cannot name any data."""
        if self.builtin:
            if self.image_size is not None or self.channels is not None:
                raise ValueError(
                    "--image-size and --channels apply to a folder or .npz dataset, not the "
                    f"built-in {self.dataset}: drop them, or give --dataset PATH"
                )
            return
        path = Path(self.dataset).expanduser()
        if not path.exists():
            raise ValueError(
                f"unknown dataset {self.dataset!r}: choose from {', '.join(DATASET_SHAPES)}, "
                "or give your own: a folder with one subfolder of images per class, or an "
                ".npz file (no such file or folder here)"
            )
        if path.is_file() and path.suffix.lower() != ".npz":
            raise ValueError(
                f"--dataset {self.dataset}: a file must be an .npz (x_train, y_train, ...); "
                "for images, give the folder that holds one subfolder per class"
            )
        size = self.image_size  # a study's stored value may be anything: check its type too
        if size is not None and not (
            isinstance(size, int)
            and not isinstance(size, bool)
            and MIN_IMAGE_SIDE <= size <= MAX_IMAGE_SIDE
        ):
            raise ValueError(
                f"--image-size must be a whole number from {MIN_IMAGE_SIDE} to "
                f"{MAX_IMAGE_SIDE}, got {size!r}"
            )
        if self.channels is not None and self.channels not in CHANNELS:
            raise ValueError(f"--channels must be 1 or 3, got {self.channels}")

    @property
    def builtin(self) -> bool:
        return self.dataset in DATASET_SHAPES  # as nas.data.is_builtin, without torch

    @property
    def label(self) -> str:
        """A short name: the built-in name, or the folder's or file's name."""
        if self.builtin:
            return self.dataset
        from nas.user_data import dataset_label

        return dataset_label(self.dataset)

    @property
    def stored_name(self) -> str:
        """What a study records as its "dataset": the name, or the absolute path (loadable
        from any folder, e.g. by the export's final training)."""
        return self.dataset if self.builtin else str(Path(self.dataset).expanduser().resolve())

    def shape(self, device: str = "cpu") -> tuple[tuple[int, int, int], int]:
        """(input shape C x H x W, classes), without decoding a user's images when avoidable."""
        if self.builtin:
            return DATASET_SHAPES[self.dataset]
        from nas.user_data import describe_user_dataset

        described = describe_user_dataset(
            self.dataset, image_size=self.image_size, channels=self.channels, device=device
        )
        return tuple(described.input_shape), described.num_classes

    def load(self, device: str = "cpu", *, split_seed: int = 0) -> Dataset:
        """The dataset with its seeded splits (a user's decoded once, then from the cache)."""
        from nas.data import load_dataset

        return load_dataset(
            self.dataset,
            self.data_dir,
            split_seed=split_seed,
            image_size=self.image_size,
            channels=self.channels,
            device=device,
        )


def add_dataset_options(parser: argparse.ArgumentParser, *, data_dir: bool = True) -> None:
    """--dataset NAME|PATH, --image-size, --channels (and --data-dir for the built-ins)."""
    parser.add_argument(
        "--dataset",
        default=DEFAULT_DATASET,
        help=f"a built-in dataset ({', '.join(DATASET_SHAPES)}; default {DEFAULT_DATASET}) or "
        "the path of your own: a folder with one subfolder of images per class (optionally "
        "under train/, val/, test/), or an .npz with x_train, y_train",
    )
    parser.add_argument(
        "--image-size",
        type=int,
        default=None,
        metavar="N",
        help="your dataset's images resized (shorter side) and centre-cropped to N x N "
        "(default: their size when they share one, else the median, at most 64 on a CPU "
        "and 224 on a GPU)",
    )
    parser.add_argument(
        "--channels",
        type=int,
        default=None,
        choices=CHANNELS,
        help="your dataset's images as 1 (grey) or 3 (RGB) channels (default: 3 if any "
        "image has colour)",
    )
    if data_dir:
        add_data_dir_option(parser)


def study_data_attrs(choice: DataChoice, data: Dataset) -> dict:
    """What a study records about the data it searches (the input shape is stored apart)."""
    attrs = {
        "dataset": choice.stored_name,
        "class_names": list(data.class_names),
    }
    if not choice.builtin:
        attrs.update(
            {
                "dataset_name": choice.label,
                "data_fingerprint": data.fingerprint,
                "image_size": choice.image_size,
                "channels": choice.channels,
            }
        )
    return attrs


def load_study_data(
    study_name: str,
    attrs: dict,
    device: str,
    dataset: str | None = None,
    data_dir: str | None = None,
    input_shape=None,
    num_classes: int | None = None,
) -> Dataset:
    """The data a stored study searched, loaded for `device`: its own dataset (or `dataset`,
    where it moved), checked to be that data and, where given, of that shape and class count.

    Raises:
        ValueError: one line: data other than the study's, or of another shape.
    """
    choice = DataChoice(
        dataset=dataset or str(attrs.get("dataset")),
        data_dir=data_dir,
        image_size=attrs.get("image_size"),
        channels=attrs.get("channels"),
    )
    choice.check()
    data = choice.load(device)
    mismatch = data_mismatch(study_name, attrs, study_data_attrs(choice, data))
    if mismatch is not None:
        raise ValueError(mismatch)
    shape_differs = input_shape is not None and tuple(data.input_shape) != tuple(input_shape)
    if shape_differs or (num_classes is not None and data.num_classes != num_classes):
        raise ValueError(
            f"dataset {data.name} has {data.input_shape} images and {data.num_classes} classes; "
            f"the study searched for {tuple(input_shape)} and {num_classes}"
        )
    return data


def data_mismatch(study_name: str, stored: dict, wanted: dict) -> str | None:
    """Why a study cannot be continued (or its network trained) on this data; None if it can.

    A user's data is matched by the fingerprint of its decoded images and labels, so the same
    folder moved elsewhere still matches and a changed one does not; a built-in one by name.
    """
    if "dataset" not in stored or "dataset" not in wanted:
        return None  # a study whose set-up has not stored its data yet
    if "data_fingerprint" in stored or "data_fingerprint" in wanted:
        old, new = stored.get("data_fingerprint"), wanted.get("data_fingerprint")
        if old == new:
            return None
        return (
            f"study {study_name!r} was searched on other data ({_data_named(stored)}) than "
            f"this run's ({_data_named(wanted)}): give another --study name, or the data the "
            "study was searched on"
        )
    if stored["dataset"] != wanted["dataset"]:
        return (
            f"study {study_name!r} was run with dataset={stored['dataset']!r}, not "
            f"{wanted['dataset']!r}: give another --study name or the same dataset"
        )
    return None


def _data_named(attrs: dict) -> str:
    name = attrs.get("dataset_name") or attrs.get("dataset")
    fingerprint = attrs.get("data_fingerprint")
    return f"{name}, fingerprint {fingerprint}" if fingerprint else str(name)


def data_key_of(choice: DataChoice, data: Dataset) -> str:
    """What a resumable run log keys its runs by: the built-in name, or the name and the
    fingerprint of a user's data (so a changed folder is not mixed with its old runs)."""
    return choice.label if choice.builtin else f"{choice.label}:{data.fingerprint}"


def class_names_text(names) -> str | None:
    """Stored class names as one line, each after its label ("0 cat, 1 dog"); None if absent."""
    if not isinstance(names, list) or not names:
        return None
    shown = ", ".join(f"{label} {name}" for label, name in enumerate(names[:MAX_CLASSES_SHOWN]))
    more = len(names) - MAX_CLASSES_SHOWN
    return shown + (f" and {more} more" if more > 0 else "")
