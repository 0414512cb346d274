"""`python -m nas.inspect NAME_OR_ARCH [--dataset D] [--json]`: an architecture and its cost.

D is a built-in dataset or the path of a user's own (`nas._data_choice`); a landmark's stem
then downsamples as the search's would on those images (`search_spaces.landmarks_for`).
"""

from __future__ import annotations

import json
import sys

from nas._arch import Arch
from nas._cli import OneLineParser, fail
from nas._data_choice import DataChoice, add_dataset_options
from nas._decoupling import decoupling_degree
from search_spaces import LANDMARKS, landmarks_for


def resolve_arch(text: str, input_shape: tuple[int, int, int] = (1, 28, 28)) -> Arch:
    """A landmark name (its form for images of `input_shape`) or an architecture string;
    ValueError says which names exist."""
    if text in LANDMARKS:
        return landmarks_for(input_shape)[text]
    if not text.startswith("stem"):
        raise ValueError(
            f"unknown landmark {text!r}: choose from {', '.join(LANDMARKS)} "
            "or give an architecture string (stem16-c32_d2_s2_...)"
        )
    return Arch.parse(text)


def describe(
    arch: Arch, dataset: str, input_shape: tuple[int, int, int], num_classes: int
) -> dict:
    """Everything `inspect` prints, as plain data (`dataset`: the data's name)."""
    from nas.cost import count_cost, part_costs

    total = count_cost(arch, input_shape, num_classes)
    parts = part_costs(arch, input_shape, num_classes)
    return {
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


def format_table(info: dict) -> str:
    """The human-readable report."""
    lines = [
        f"arch        {info['arch']}",
        f"input       {'x'.join(map(str, info['input_shape']))} ({info['dataset']}, "
        f"{info['num_classes']} classes)",
        "",
        f"{'part':<16}{'MACs':>12}{'params':>10}{'share of MACs':>15}",
    ]
    for part in info["parts"]:
        lines.append(
            f"{part['name']:<16}{part['macs']:>12,}{part['params']:>10,}{part['share']:>14.1%}"
        )
    lines += [
        f"{'total':<16}{info['macs']:>12,}{info['params']:>10,}",
        "",
        f"MACs        {info['macs'] / 1e6:.3f} M multiply-accumulates "
        f"(= {info['flops'] / 1e6:.3f} M FLOPs)",
        f"params      {info['params']:,}",
        f"decoupling  {info['decoupling']:.3f}  (0 = normal conv, 1 = depthwise separable)",
    ]
    return "\n".join(lines)


def build_parser() -> OneLineParser:
    parser = OneLineParser(
        module="nas.inspect",
        script="nas-inspect",
        description="Print an architecture's per-block cost (MACs, params) and decoupling.",
    )
    parser.add_argument("arch", help="a landmark name (e.g. xception) or an architecture string")
    add_dataset_options(parser, data_dir=False)  # a built-in's shape needs no files
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        data = DataChoice.from_args(args)
        input_shape, num_classes = data.shape()  # read once: a user's images are scanned
        arch = resolve_arch(args.arch, input_shape)
        info = describe(arch, data.label, input_shape, num_classes)
    except ValueError as error:
        return fail(str(error))
    print(json.dumps(info) if args.json else format_table(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
