"""`python -m nas.inspect NAME_OR_ARCH [--dataset D | --input CxHxW --classes N] [--json]`: an
architecture and its cost.

NAME is a landmark (`search_spaces.LANDMARKS`) or a paper's network (`search_spaces.PUBLISHED`).
D is a built-in dataset or the path of a user's own (`nas._data_choice`); a landmark's stem
then downsamples as the search's would on those images (`search_spaces.landmarks_for`).
`--input` and `--classes` give the shape and classes directly, in place of a dataset's; a
paper's network is counted on its paper's input and classes unless they are given.

For a paper's network the report also puts the paper's figures beside ours, with the
difference in percent where the network is counted on the paper's input and classes; for a
one-module network (only the module is the paper's) it sums the module's own parts first.
"""

from __future__ import annotations

import argparse
import json
import sys

from nas._arch import MAX_WIDTH, Arch
from nas._cli import OneLineParser, fail
from nas._data_choice import (
    MAX_IMAGE_SIDE,
    MIN_IMAGE_SIDE,
    DataChoice,
    add_dataset_options,
)
from nas._decoupling import decoupling_degree
from search_spaces import LANDMARKS, PUBLISHED, PublishedNetwork, landmarks_for

# Enough for ImageNet-21k's 21,841; the head's size grows with it.
MAX_CLASSES = 100_000
# What a published network's paper input is called in the report.
PAPER_DATA = "ImageNet"
GIVEN_DATA = "--input/--classes"
# How the figures' quantities read in the table.
QUANTITY_LABELS = {
    "params": "params",
    "macs": "MACs",
    "module_weights": "module weights",
    "module_macs": "module MACs",
}


class _NotGiven(str):
    """--dataset's default, told apart from the same name typed (it is equal to it)."""


def input_shape(text: str) -> tuple[int, int, int]:
    """An argparse type: CxHxW, e.g. 3x224x224 (channels 1 to MAX_WIDTH, sides from
    MIN_IMAGE_SIDE to MAX_IMAGE_SIDE pixels)."""
    sizes = text.lower().split("x")
    if len(sizes) != 3 or not all(size.isascii() and size.isdigit() for size in sizes):
        raise argparse.ArgumentTypeError(
            f"expected CxHxW, three whole numbers such as 3x224x224, got {text!r}"
        )
    channels, height, width = (int(size) for size in sizes)
    if not 1 <= channels <= MAX_WIDTH:
        raise argparse.ArgumentTypeError(
            f"channels must be 1 to {MAX_WIDTH}, got {channels} in {text!r}"
        )
    if not (
        MIN_IMAGE_SIDE <= height <= MAX_IMAGE_SIDE and MIN_IMAGE_SIDE <= width <= MAX_IMAGE_SIDE
    ):
        raise argparse.ArgumentTypeError(
            f"height and width must be {MIN_IMAGE_SIDE} to {MAX_IMAGE_SIDE} pixels, "
            f"got {height}x{width} in {text!r}"
        )
    return channels, height, width


def class_count(text: str) -> int:
    """An argparse type: a number of classes, 1 to MAX_CLASSES."""
    try:
        classes = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 1 <= classes <= MAX_CLASSES:
        raise argparse.ArgumentTypeError(f"must be 1 to {MAX_CLASSES:,}, got {classes}")
    return classes


def resolve_arch(text: str, input_shape: tuple[int, int, int] = (1, 28, 28)) -> Arch:
    """A landmark name (its form for images of `input_shape`), a published network's name or an
    architecture string; ValueError says which names exist."""
    if text in LANDMARKS:
        return landmarks_for(input_shape)[text]
    if text in PUBLISHED:
        return PUBLISHED[text].arch
    if not text.startswith("stem"):
        raise ValueError(
            f"unknown name {text!r}: choose a landmark ({', '.join(LANDMARKS)}), a paper's "
            f"network ({', '.join(PUBLISHED)}) or give an architecture string "
            "(stem16-c32_d2_s2_...)"
        )
    return Arch.parse(text)


def describe(
    arch: Arch,
    dataset: str,
    input_shape: tuple[int, int, int],
    num_classes: int,
    published: PublishedNetwork | None = None,
) -> dict:
    """Everything `inspect` prints, as plain data (`dataset`: the data's name); with
    `published`, also the paper's figures beside ours ("published")."""
    from nas.cost import count_cost, part_costs

    total = count_cost(arch, input_shape, num_classes)
    parts = part_costs(arch, input_shape, num_classes)
    info = {
        "arch": str(arch),
        "dataset": dataset,
        "num_classes": num_classes,
        "input_shape": list(input_shape),
        "macs": total.macs,
        "flops": total.flops,
        "params": total.params,
        "decoupling": round(decoupling_degree(arch), 4),
        "parts": [
            {"name": p.name, "macs": p.macs, "params": p.params, "share": round(p.share, 4)}
            for p in parts
        ],
    }
    if published is not None:
        info["published"] = _published_info(info, arch, published)
    return info


def _module_weights(arch: Arch, part_names: tuple[str, ...]) -> int:
    """The conv weights of the blocks named stageI.blockJ (the plan the builder builds)."""
    from nas._plan import arch_plan

    plans = arch_plan(arch)
    weights = 0
    for name in part_names:
        stage, block = name.removeprefix("stage").split(".block")
        plan = plans[int(stage) - 1][int(block) - 1]
        layers = [layer for branch in plan.branches for layer in branch.layers]
        layers += [layer for layer in (plan.pre_pool, plan.post_pool, plan.projection) if layer]
        weights += sum(layer.weights for layer in layers)
    return weights


def _published_info(info: dict, arch: Arch, published: PublishedNetwork) -> dict:
    """The paper's figures beside ours, and the module's own cost for a one-module network."""
    module = None
    ours = {"params": info["params"], "macs": info["macs"]}
    if published.module_parts:
        parts = [part for part in info["parts"] if part["name"] in published.module_parts]
        module = {
            "parts": [part["name"] for part in parts],
            "macs": sum(part["macs"] for part in parts),
            "params": sum(part["params"] for part in parts),
            "conv_weights": _module_weights(arch, published.module_parts),
        }
        ours.update(module_macs=module["macs"], module_weights=module["conv_weights"])
    comparable = (
        tuple(info["input_shape"]) == published.input_shape
        and info["num_classes"] == published.num_classes
    )
    figures = []
    for figure in published.figures:
        value = ours[figure.quantity]
        difference = (value - figure.value) / figure.value * 100 if comparable else None
        figures.append(
            {
                "quantity": figure.quantity,
                "ours": value,
                "paper": figure.value,
                "difference_pct": None if difference is None else round(difference, 3),
                "stated": figure.stated,
                "source": figure.source,
            }
        )
    return {
        "name": published.name,
        "title": published.title,
        "paper": published.paper,
        "structure": published.structure,
        "paper_input_shape": list(published.input_shape),
        "paper_num_classes": published.num_classes,
        "comparable": comparable,
        "module": module,
        "figures": figures,
        "differs": published.differs,
    }


def format_table(info: dict) -> str:
    """The human-readable report."""
    # Columns as wide as the largest figure needs (an ImageNet network's MACs run to billions).
    macs_width = max(12, len(f"{info['macs']:,}") + 2)
    params_width = max(10, len(f"{info['params']:,}") + 2)
    lines = [
        f"arch        {info['arch']}",
        f"input       {'x'.join(map(str, info['input_shape']))} ({info['dataset']}, "
        f"{info['num_classes']} classes)",
        "",
        f"{'part':<16}{'MACs':>{macs_width}}{'params':>{params_width}}{'share of MACs':>15}",
    ]
    for part in info["parts"]:
        lines.append(
            f"{part['name']:<16}{part['macs']:>{macs_width},}{part['params']:>{params_width},}"
            f"{part['share']:>14.1%}"
        )
    lines += [
        f"{'total':<16}{info['macs']:>{macs_width},}{info['params']:>{params_width},}",
        "",
        f"MACs        {info['macs'] / 1e6:.3f} M multiply-accumulates "
        f"(= {info['flops'] / 1e6:.3f} M FLOPs)",
        f"params      {info['params']:,}",
        f"decoupling  {info['decoupling']:.3f}  (0 = normal conv, 1 = depthwise separable)",
    ]
    if "published" in info:
        lines += ["", *_format_published(info["published"])]
    return "\n".join(lines)


def _format_published(paper: dict) -> list[str]:
    lines = [
        f"paper       {paper['title']}: {paper['paper']} ({paper['structure']})",
        f"            on {'x'.join(map(str, paper['paper_input_shape']))}, "
        f"{paper['paper_num_classes']} classes",
    ]
    module = paper["module"]
    if module is not None:
        lines.append(
            f"module      {' + '.join(module['parts'])} (the paper's; stem and head are ours): "
            f"{module['macs']:,} MACs, {module['params']:,} params of which "
            f"{module['conv_weights']:,} conv weights"
        )
    lines += [
        "",
        f"{'figure':<16}{'ours':>15}{'paper':>15}{'difference':>12}  as the paper has it",
    ]
    for figure in paper["figures"]:
        difference = figure["difference_pct"]
        shown = "-" if difference is None else f"{difference:+.2f}%"
        lines.append(
            f"{QUANTITY_LABELS[figure['quantity']]:<16}{figure['ours']:>15,}"
            f"{figure['paper']:>15,}{shown:>12}  {figure['stated']} ({figure['source']})"
        )
    if not paper["comparable"]:
        lines.append(
            "            (counted on another input or classes than the paper's: no difference)"
        )
    lines.append(f"differs     {paper['differs']}")
    return lines


def build_parser() -> OneLineParser:
    parser = OneLineParser(
        module="nas.inspect",
        script="nas-inspect",
        description="Print an architecture's per-block cost (MACs, params) and decoupling; for "
        "a paper's network, the paper's figures beside ours.",
    )
    parser.add_argument(
        "arch",
        help="a landmark name (e.g. xception), a paper's network "
        f"({', '.join(PUBLISHED)}; on its paper's input by default) or an architecture string",
    )
    add_dataset_options(parser, data_dir=False)  # a built-in's shape needs no files
    # Told apart from a typed --dataset: a paper's network has its own default, and --input
    # or --classes with a --dataset is refused.
    parser.set_defaults(dataset=_NotGiven(parser.get_default("dataset")))
    # SUPPRESS: absent from the parsed options unless typed.
    parser.add_argument(
        "--input",
        type=input_shape,
        default=argparse.SUPPRESS,
        metavar="CxHxW",
        help="count for images of this shape instead of a dataset's, e.g. 3x32x32 (default: "
        "the dataset's, or a paper's network's paper input)",
    )
    parser.add_argument(
        "--classes",
        type=class_count,
        default=argparse.SUPPRESS,
        metavar="N",
        help="count with a head of N classes instead of a dataset's (default: the dataset's, "
        "or a paper's network's 1000)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def choose_data(args: argparse.Namespace) -> tuple[str, tuple[int, int, int], int]:
    """(the data's name, input shape, classes) that the options and the name ask for.

    Raises:
        ValueError: one line: --input or --classes beside --dataset, or a bad dataset.
    """
    given = {
        option: getattr(args, option.removeprefix("--"))
        for option in ("--input", "--classes")
        if hasattr(args, option.removeprefix("--"))
    }
    dataset_typed = not isinstance(args.dataset, _NotGiven)
    if dataset_typed and given:
        raise ValueError(
            f"{' and '.join(given)} cannot go with --dataset, which sets the input shape and "
            "classes too: give one or the other"
        )
    args.dataset = str(args.dataset)
    data = DataChoice.from_args(args)  # refuses --image-size and --channels without a folder
    published = PUBLISHED.get(args.arch)
    if published is not None and not dataset_typed:
        label, shape, classes = PAPER_DATA, published.input_shape, published.num_classes
    else:
        shape, classes = data.shape()  # read once: a user's images are scanned
        label = data.label
    if given:
        label = GIVEN_DATA
    return label, given.get("--input", shape), given.get("--classes", classes)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        label, shape, classes = choose_data(args)
        arch = resolve_arch(args.arch, shape)
        info = describe(arch, label, shape, classes, PUBLISHED.get(args.arch))
    except ValueError as error:
        return fail(str(error))
    print(json.dumps(info) if args.json else format_table(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
