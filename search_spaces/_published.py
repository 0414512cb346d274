"""The papers' networks by name, as exact points of the grammar, with the figures the papers give.

Each entry is plain data (no torch): the architecture string, the input the paper used, its
1000 ImageNet classes, and the paper's own figures with where they are printed, so a reader (and
`python -m nas.inspect NAME`) can put our counts beside them. docs/published.md has the table.

Two are whole networks:

- `mobilenet_v1_imagenet`: MobileNet v1 (1.0, 224), Howard et al. 2017, Table 1 layer by layer
  (the stride sits on the depthwise conv, BatchNorm and ReLU after every conv). Its parameters
  are 4,231,976 exactly: Table 1's conv and classifier weights, the classifier's bias and
  BatchNorm's scale and shift; the paper rounds to 4.2 million (Table 8). Our MACs are
  568,741,352 against the paper's 569 million mult-adds (ptflops also counts the classifier's
  1,000 bias additions).
- `xception_imagenet`: Xception, Chollet 2017, Fig. 5 (entry, 8 middle units, exit flow), with
  22,855,952 parameters, the exact figure of its Table 3. One difference: Fig. 5's stem convs
  are unpadded (299 -> 149 -> 147), ours pad 'same' (299 -> 150 -> 150), so every later map
  is a little larger: the network's MACs are 8,470,753,656 with our padding and 8,357,403,496
  with the paper's (measured by unpadding the built stem), 1.36% more; the parameters do not
  change. The paper prints no MACs figure.

Two are one-module networks, in which only the module is the paper's: the stem (a strided
conv we chose, to bring the paper's input channels to the paper's resolution) and the head
(global pool, a 1000-way linear layer) are ours, and the paper's figures cover the module only
(`module_parts`; `python -m nas.inspect` sums those parts):

- `inception_3a`: GoogLeNet's inception(3a), Szegedy et al. 2014, Table 1 (#1x1 64, #3x3
  reduce 96, #3x3 128, #5x5 reduce 16, #5x5 32, pool proj 32), on the 192 x 28 x 28 map the
  paper feeds it (224 input, stem stride 8). Its conv weights are 163,328 (159.5 K with
  K = 1024, Table 1's "159K") and its MACs 128,049,152 (Table 1's "128M"). Our convs have no
  bias (BatchNorm follows each; the paper's have a bias and no BatchNorm) and the ReLU after
  each branch's last conv is the one ReLU after the concatenation, which is the same function.
- `resnext50_block`: a ResNeXt-50 (32x4d) bottleneck, Xie et al. 2017, Table 1's conv2 (1x1
  128, 3x3 128 in 32 groups, 1x1 256; identity shortcut) in its grouped form (Fig. 3c), on a
  256 x 56 x 56 map (224 input, stem stride 4). Sec. 3.3 gives its parameters as
  C * (256 d + 3 * 3 * d * d + d * 256) = 70,144 (C = 32, d = 4; "about 70k") and its FLOPs as
  proportional to them, 70,144 multiply-adds per position of conv2's 56 x 56 map: 219,971,584.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from nas import Arch

IMAGENET_CLASSES = 1000

# Where a figure belongs: the whole network's, or the paper's module's only (module_parts).
QUANTITIES = ("params", "macs", "module_weights", "module_macs")


class PaperFigure(NamedTuple):
    """One figure a paper gives, as the number it stands for.

    Attributes:
        quantity: one of QUANTITIES: the network's parameters or multiply-accumulates, or the
            module's conv weights or multiply-accumulates.
        value: the number (a rounded figure as the round number it is, e.g. 569,000,000).
        stated: how the paper writes it, and how the number follows where it is derived.
        source: where in the paper.
    """

    quantity: str
    value: int
    stated: str
    source: str


@dataclass(frozen=True)
class PublishedNetwork:
    """A paper's network (or a network around a paper's module) and the paper's figures.

    Attributes:
        name: the name `python -m nas.inspect` takes.
        title: the network as the paper calls it.
        paper: authors, year and title.
        structure: where in the paper the layers are drawn or tabled.
        arch_text: the canonical architecture string.
        input_shape: the paper's input, (channels, height, width).
        num_classes: the paper's classes.
        figures: the paper's figures.
        module_parts: the `nas.cost.part_costs` names that are the paper's module, for a
            one-module network; empty when the figures are the whole network's.
        differs: what our network does differently from the paper, in one sentence.
    """

    name: str
    title: str
    paper: str
    structure: str
    arch_text: str
    input_shape: tuple[int, int, int]
    num_classes: int
    figures: tuple[PaperFigure, ...]
    module_parts: tuple[str, ...] = ()
    differs: str = ""

    def __post_init__(self) -> None:
        unknown = [figure.quantity for figure in self.figures if figure.quantity not in QUANTITIES]
        if unknown:
            raise ValueError(f"{self.name}: unknown figure quantities {unknown}")

    @property
    def arch(self) -> Arch:
        return Arch.parse(self.arch_text)


_MOBILENET_BLOCK = "k3_gdw_pafter_f0_a1_r0"
_XCEPTION_BLOCK = "k3_gdw_pafter_f0_a0"

PUBLISHED: dict[str, PublishedNetwork] = {
    network.name: network
    for network in (
        PublishedNetwork(
            name="mobilenet_v1_imagenet",
            title="MobileNet v1 (1.0 MobileNet-224)",
            paper="Howard et al. 2017, MobileNets: Efficient Convolutional Neural Networks for "
            "Mobile Vision Applications",
            structure="Table 1",
            arch_text="-".join(
                ["stem32s2"]
                + [
                    f"c{width}_d{depth}_s{stride}_{_MOBILENET_BLOCK}"
                    for width, depth, stride in (
                        (64, 1, 1),
                        (128, 2, 2),
                        (256, 2, 2),
                        (512, 6, 2),
                        (1024, 2, 2),
                    )
                ]
            ),
            input_shape=(3, 224, 224),
            num_classes=IMAGENET_CLASSES,
            figures=(
                PaperFigure("params", 4_200_000, "4.2 million parameters", "Table 8"),
                PaperFigure(
                    "params",
                    4_231_976,
                    "Table 1's layers counted: conv and classifier weights, the classifier's "
                    "bias, BatchNorm's scale and shift",
                    "Table 1",
                ),
                PaperFigure("macs", 569_000_000, "569 million mult-adds", "Table 8"),
            ),
            differs="nothing: Table 1's layers, BatchNorm and ReLU after every conv",
        ),
        PublishedNetwork(
            name="xception_imagenet",
            title="Xception",
            paper="Chollet 2017, Xception: Deep Learning with Depthwise Separable Convolutions",
            structure="Fig. 5",
            arch_text="-".join(
                (
                    "stem32.64s2",
                    f"c128_d1_s2post_{_XCEPTION_BLOCK}_r1_n2_v1_b0",
                    f"c256_d1_s2post_{_XCEPTION_BLOCK}_r1_n2_v1_b0",
                    f"c728_d1_s2post_{_XCEPTION_BLOCK}_r1_n2_v1_b0",
                    f"c728_d8_s1_{_XCEPTION_BLOCK}_r1_n3_v1_b0",
                    f"c1024_d1_s2post_{_XCEPTION_BLOCK}_r1_m728_n2_v1_b0",
                    f"c2048_d1_s1_{_XCEPTION_BLOCK}_r0_m1536_n2_b0",
                )
            ),
            input_shape=(3, 299, 299),
            num_classes=IMAGENET_CLASSES,
            figures=(PaperFigure("params", 22_855_952, "22,855,952 parameters", "Table 3"),),
            differs="the stem's two convs pad 'same' where Fig. 5's are unpadded: 1.36% more "
            "MACs (8,470,753,656 against 8,357,403,496), the same parameters",
        ),
        PublishedNetwork(
            name="inception_3a",
            title="GoogLeNet inception(3a)",
            paper="Szegedy et al. 2014, Going Deeper with Convolutions",
            structure="Table 1",
            arch_text="stem192s8-c256_d1_s1_k1.3.5.pool_g1_pbefore_f0_a1_r0"
            "_w64.128.32.32_m64.96.16.32",
            input_shape=(3, 224, 224),
            num_classes=IMAGENET_CLASSES,
            figures=(
                PaperFigure("module_weights", 159 * 1024, "159K params (K = 1024)", "Table 1"),
                PaperFigure("module_macs", 128_000_000, "128M ops", "Table 1"),
            ),
            module_parts=("stage1.block1",),
            differs="only the module is the paper's (the stem and head are ours); BatchNorm "
            "after its convs, which have no bias",
        ),
        PublishedNetwork(
            name="resnext50_block",
            title="ResNeXt-50 (32x4d) conv2 bottleneck",
            paper="Xie et al. 2017, Aggregated Residual Transformations for Deep Neural Networks",
            structure="Table 1 conv2, Fig. 3c",
            arch_text="stem256s4-c256_d1_s1_k3_g32_pboth_f0_a1_r1_m128",
            input_shape=(3, 224, 224),
            num_classes=IMAGENET_CLASSES,
            figures=(
                PaperFigure(
                    "module_weights",
                    32 * (256 * 4 + 3 * 3 * 4 * 4 + 4 * 256),
                    "about 70k: C * (256 d + 3 * 3 * d * d + d * 256) with C = 32, d = 4",
                    "Sec. 3.3, Eqn. (4)",
                ),
                PaperFigure(
                    "module_macs",
                    32 * (256 * 4 + 3 * 3 * 4 * 4 + 4 * 256) * 56 * 56,
                    "FLOPs proportional to the parameters: 70,144 per position of conv2's "
                    "56 x 56 map",
                    "Sec. 3.3, Table 1",
                ),
            ),
            module_parts=("stage1.block1",),
            differs="only the block is the paper's (the stem and head are ours)",
        ),
    )
}


def published_names() -> list[str]:
    """The published networks' names."""
    return list(PUBLISHED)


def published_network(name: str) -> Arch:
    """The Arch of the published network `name`; ValueError lists the names."""
    if name not in PUBLISHED:
        raise ValueError(f"unknown published network {name!r}: choose from {', '.join(PUBLISHED)}")
    return PUBLISHED[name].arch
