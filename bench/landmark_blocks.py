"""What each landmark builds, read from its torch modules: stage 2, block 1 (the block that takes
the stage's stride and its width change).

The text comes from the built `nn.Module` tree only (convs, BatchNorms, ReLUs, pools and their
order), never from the architecture string or the layer plan, so it shows what a trial trains.

    python bench/landmark_blocks.py          # -> bench/results/landmark_blocks.md
    python bench/landmark_blocks.py --out -  # print it
"""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nas import build_model  # noqa: E402
from search_spaces import LANDMARKS  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "landmark_blocks.md"


def words(module: nn.Module) -> list[str]:
    """A module's layers in order, in words: '1x1 32->16', 'BN', 'ReLU', '3x3 max pool s2'."""
    out: list[str] = []
    for part in module.modules() if isinstance(module, nn.Sequential) else [module]:
        if isinstance(part, nn.Conv2d):
            kernel, stride = part.kernel_size[0], part.stride[0]
            groups = part.groups
            text = f"{kernel}x{kernel} {part.in_channels}->{part.out_channels}"
            if groups == part.in_channels > 1:
                text += " depthwise"
            elif groups > 1:
                text += f" g{groups}"
            out.append(text + (f" s{stride}" if stride > 1 else ""))
        elif isinstance(part, nn.BatchNorm2d):
            out.append("BN")
        elif isinstance(part, nn.ReLU):
            out.append("ReLU")
        elif isinstance(part, (nn.MaxPool2d, nn.AvgPool2d)):
            kind = "max" if isinstance(part, nn.MaxPool2d) else "avg"
            stride = part.stride if isinstance(part.stride, int) else part.stride[0]
            out.append(
                f"{part.kernel_size}x{part.kernel_size} {kind} pool" + f" s{stride}" * (stride > 1)
            )
    return out


def describe(block: nn.Module) -> dict[str, str]:
    """One block's parts: what comes before, each branch, after, the shortcut, the output."""
    before = " -> ".join(words(block.pre_pool)) if hasattr(block, "pre_pool") else ""
    branches = " \\| ".join(" -> ".join(words(branch)) for branch in block.branches)
    after = " -> ".join(words(block.post_pool)) if hasattr(block, "post_pool") else ""
    if block.shortcut is None:
        shortcut = "none"
    elif isinstance(block.shortcut, nn.Identity):
        shortcut = "identity"
    else:
        shortcut = " -> ".join(words(block.shortcut))
    end = "ReLU" if isinstance(block.act, nn.ReLU) else "none"
    return {
        "before": before or "-",
        "branches": branches,
        "after": after or "-",
        "shortcut": shortcut,
        "after the add": end,
    }


def report() -> str:
    lines = [
        "# What each landmark builds: stage 2, block 1",
        "",
        "Read from the built modules (`nas.build_model(landmark, 1, 10)`), stage 2's first block:",
        "32 -> 64 channels, stride 2. Branches are separated by `|`, layers by `->`. Which paper",
        "figure each follows and what had to differ: the README's Landmarks table; each row is",
        "checked against its paper on the built modules by tests/test_landmarks.py.",
        "",
        f"Command: `python bench/landmark_blocks.py`; date {datetime.date.today().isoformat()}.",
        "",
        "| landmark | before | branches | after | shortcut | after the add |",
        "|---|---|---|---|---|---|",
    ]
    for name, arch in LANDMARKS.items():
        block = build_model(arch, 1, 10).stages[1][0]
        row = describe(block)
        lines.append(f"| `{name}` | " + " | ".join(row.values()) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(RESULTS), help="file to write, or - to print")
    args = parser.parse_args(argv)
    text = report()
    if args.out == "-":
        print(text, end="")
    else:
        Path(args.out).write_text(text)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
