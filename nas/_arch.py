"""An architecture as a value: frozen, hashable, with one canonical string (pure Python, no torch).

String form (stages joined by "-", knobs of a stage joined by "_"):

    stem16-c32_d2_s2_k3_g1_pnone_f0_a0_r0-c64_d2_s2_k1.3.5.pool_g1_pbefore_f1_a1_r0
    stem16s8-c32_d2_s2_k3_g1_pnone_f0_a0_r0-...   (the same stages behind a stride-8 stem)

    stemN     stem conv width (3 x 3, stride 1)
    stemNsS   the same with the stem's stride S (2, 4, 8 or 16), for large images: the conv
              takes stride 2, a max pool follows from 4 on, an average pool precedes from 8
              on (nas._plan.stem_plan); S is written only when it is not 1 (so stemNs1 is
              refused: it is spelled stemN)
    cN        stage width (output channels of every block)
    dN        depth (blocks in the stage; the knobs below are shared by them)
    sN        stride of the stage's first block (1 or 2)
    kA.B..    parallel branches, concatenated: spatial kernels 1/3/5/7, or pool (3x3 max -> 1x1)
    gN | gdw  segments of each spatial conv (its groups): 1 = normal, dw = one per channel
    pX        where the 1x1 channel mix sits: none, before, after, both (bottleneck)
    f0 | f1   factorize k x k (k >= 5) into stacked 3 x 3
    a0 | a1   activation between the spatial and the pointwise step
    r0 | r1   residual connection around each block

Every number is bounded (the MAX_ constants below), so a hostile or corrupt string is refused at
once instead of being read into a network that takes minutes to canonicalize or gigabytes to
build.

Architectures that build the same network share one string: the constructor canonicalizes
(sorted branches, knobs that cannot matter reset, segments lowered to what the channels allow,
mergeable stages merged), so `Arch.parse(str(a)) == a` and equality is network identity.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace

from nas._channels import branch_widths, resolve_groups, spatial_conv_shapes

BRANCH_ORDER = ("1", "3", "5", "7", "pool")
POINTWISE_PLACES = ("none", "before", "after", "both")
STRIDES = (1, 2)
# The stem's downsampling: large images reach the stages at about the resolution the spaces
# were designed for (search_spaces.stem_stride_for chooses it from the input size).
STEM_STRIDES = (1, 2, 4, 8, 16)
_STEM_STRIDE_TEXT = {str(stride): stride for stride in STEM_STRIDES if stride != 1}

# Bounds of the grammar, generous for real networks: Xception and ResNet-50 end at 2048
# channels, ResNet-152 has 50 blocks and Xception 12 modules, so none comes near them. They
# keep the constructor's work (each group count is a search below the width) and a built
# network's size finite for any string, however hostile.
MAX_WIDTH = 4096  # channels of the stem and of each stage; also the largest segments request
MAX_BLOCKS = 256  # blocks of the whole network (so also of one stage, merged or not)
MAX_STAGES = 64
MAX_TEXT = 4096  # characters of a string form (64 of the longest stages fit in 3,200)
_DIGITS = re.compile("[0-9]{1,9}")  # ASCII only: int() would also read '٣' and other scripts


def _check_count(what: str, value, high: int) -> None:
    """ValueError unless `value` is an int (not a bool) in 1..high."""
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= high:
        raise ValueError(f"{what} must be an int from 1 to {high}, got {value!r}")


@dataclass(frozen=True)
class Stage:
    """One stage: `depth` blocks of `width` channels that share their knobs."""

    width: int
    depth: int
    stride: int
    branches: tuple[str, ...]
    segments: int | str
    pointwise: str
    factorize: bool
    mid_act: bool
    residual: bool

    def __post_init__(self) -> None:
        _check_count("stage width", self.width, MAX_WIDTH)
        _check_count("stage depth", self.depth, MAX_BLOCKS)
        if self.stride not in STRIDES:
            raise ValueError(f"stage stride must be 1 or 2, got {self.stride!r}")
        branches = tuple(str(branch) for branch in self.branches)
        unknown = [branch for branch in branches if branch not in BRANCH_ORDER]
        if not branches or unknown:
            raise ValueError(
                f"branches must be a non-empty subset of {', '.join(BRANCH_ORDER)}, "
                f"got {self.branches!r}"
            )
        if len(set(branches)) != len(branches):
            raise ValueError(f"branches repeat a kernel: {self.branches!r}")
        if len(branches) > self.width:
            raise ValueError(f"{len(branches)} branches do not fit in width {self.width}")
        if self.segments != "dw":
            _check_count("segments (or 'dw')", self.segments, MAX_WIDTH)
        if self.pointwise not in POINTWISE_PLACES:
            raise ValueError(
                f"pointwise must be one of {', '.join(POINTWISE_PLACES)}, got {self.pointwise!r}"
            )
        object.__setattr__(self, "branches", tuple(sorted(branches, key=BRANCH_ORDER.index)))
        for flag in ("factorize", "mid_act", "residual"):
            object.__setattr__(self, flag, bool(getattr(self, flag)))

    @property
    def spatial_kernels(self) -> tuple[int, ...]:
        """Kernels of the branches that have a spatial conv (k >= 3)."""
        return tuple(int(b) for b in self.branches if b not in ("1", "pool"))

    def block_in_channels(self, stage_in_chs: int) -> list[int]:
        """Input channels of each block: the first block takes the previous stage's width."""
        return [stage_in_chs] + [self.width] * (self.depth - 1)

    def spatial_convs(self, stage_in_chs: int) -> list[tuple[int, int]]:
        """(in, out) channels of every spatial conv of every block in this stage."""
        shapes = []
        for in_chs in self.block_in_channels(stage_in_chs):
            widths = branch_widths(self.width, len(self.branches))
            for branch, branch_chs in zip(self.branches, widths):
                shapes += spatial_conv_shapes(
                    in_chs, branch_chs, branch, self.pointwise, self.factorize
                )
        return shapes

    def canonical(self, stage_in_chs: int) -> Stage:
        """The same network with every knob that cannot matter set to its one canonical value."""
        stage = self
        if not stage.spatial_kernels:
            stage = replace(stage, segments=1, pointwise="none", factorize=False, mid_act=False)
        if not any(kernel >= 5 for kernel in stage.spatial_kernels):
            stage = replace(stage, factorize=False)
        if stage.pointwise == "none":
            stage = replace(stage, mid_act=False)
        # Each distinct shape once: a deep stage repeats one shape per block.
        convs = list(dict.fromkeys(stage.spatial_convs(stage_in_chs)))
        if convs:
            groups = [resolve_groups(cin, cout, stage.segments) for cin, cout in convs]
            most = [resolve_groups(cin, cout, "dw") for cin, cout in convs]
            # The smallest request that yields the same groups on every conv is their maximum.
            segments = "dw" if groups == most and max(most) > 1 else max(groups)
            stage = replace(stage, segments=segments)
        return stage

    def knobs(self) -> tuple:
        """Everything but width, depth and stride: what blocks of a merged stage must share."""
        return (
            self.branches,
            self.segments,
            self.pointwise,
            self.factorize,
            self.mid_act,
            self.residual,
        )

    def to_token(self) -> str:
        """This stage's part of the canonical string."""
        return "_".join(
            [
                f"c{self.width}",
                f"d{self.depth}",
                f"s{self.stride}",
                "k" + ".".join(self.branches),
                f"g{self.segments}",
                f"p{self.pointwise}",
                f"f{int(self.factorize)}",
                f"a{int(self.mid_act)}",
                f"r{int(self.residual)}",
            ]
        )


@dataclass(frozen=True)
class Arch:
    """A whole network: stem conv -> stages -> global average pool -> linear head.

    `stem_stride` is the stem's downsampling (see STEM_STRIDES): 1 keeps the input's
    resolution, as every network did before strided stems.
    """

    stem: int
    stages: tuple[Stage, ...]
    stem_stride: int = 1

    def __post_init__(self) -> None:
        _check_count("stem width", self.stem, MAX_WIDTH)
        stride = self.stem_stride
        if not isinstance(stride, int) or isinstance(stride, bool) or stride not in STEM_STRIDES:
            raise ValueError(
                f"stem stride must be one of {', '.join(map(str, STEM_STRIDES))}, got {stride!r}"
            )
        if not self.stages:
            raise ValueError("an architecture needs at least one stage")
        if len(self.stages) > MAX_STAGES:
            raise ValueError(f"{len(self.stages)} stages, more than the {MAX_STAGES} allowed")
        blocks = sum(stage.depth for stage in self.stages)
        if blocks > MAX_BLOCKS:
            raise ValueError(f"{blocks} blocks in all, more than the {MAX_BLOCKS} allowed")
        canonical: list[Stage] = []
        in_chs = self.stem
        for stage in self.stages:
            stage = stage.canonical(in_chs)
            previous = canonical[-1] if canonical else None
            # Two stride-1-joined stages with one width and one set of knobs are one deeper stage.
            if (
                previous is not None
                and stage.stride == 1
                and stage.width == previous.width
                and stage.knobs() == previous.knobs()
            ):
                merged = replace(previous, depth=previous.depth + stage.depth)
                canonical[-1] = merged.canonical(self.stage_in_channels_of(canonical, -1))
            else:
                canonical.append(stage)
            in_chs = stage.width
        object.__setattr__(self, "stages", tuple(canonical))

    def stage_in_channels_of(self, stages: list[Stage], index: int) -> int:
        index = index % len(stages)
        return self.stem if index == 0 else stages[index - 1].width

    def stage_in_channels(self) -> list[int]:
        """Input channels of each stage."""
        return [self.stem] + [stage.width for stage in self.stages[:-1]]

    @property
    def out_channels(self) -> int:
        return self.stages[-1].width

    @property
    def total_stride(self) -> int:
        """The input's downsampling before the global pool: the stem's times the stages'."""
        return self.stem_stride * math.prod(stage.stride for stage in self.stages)

    def __str__(self) -> str:
        # A stride of 1 is left unwritten: strings stored before strided stems keep their text.
        stem = f"stem{self.stem}" + (f"s{self.stem_stride}" if self.stem_stride != 1 else "")
        return "-".join([stem] + [stage.to_token() for stage in self.stages])

    @classmethod
    def parse(cls, text: str) -> Arch:
        """Read an architecture from its string form; ValueError names the token at fault."""
        if not isinstance(text, str) or not text.strip():
            raise ValueError("empty architecture string")
        if len(text) > MAX_TEXT:
            raise ValueError(
                f"architecture string of {len(text)} characters, longer than the {MAX_TEXT} "
                f"allowed: {text[:40]!r}..."
            )
        parts = text.strip().split("-")
        stem_token = parts[0]
        width, strided, stride = stem_token[4:].partition("s")
        if not stem_token.startswith("stem") or not (width.isascii() and width.isdigit()):
            raise ValueError(
                f"bad token {stem_token!r}: the string must start with stemN or stemNsS"
            )
        if not _DIGITS.fullmatch(width) or not 1 <= int(width) <= MAX_WIDTH:
            raise ValueError(f"bad token {stem_token!r}: stem width must be 1 to {MAX_WIDTH}")
        # Only the canonical spelling: one string per network (a stride of 1 has no sS).
        if strided and stride not in _STEM_STRIDE_TEXT:
            raise ValueError(
                f"bad token {stem_token!r}: the stem stride must be written "
                f"{', '.join(f's{text}' for text in _STEM_STRIDE_TEXT)}, or left out for 1"
            )
        if len(parts) - 1 > MAX_STAGES:
            raise ValueError(f"{len(parts) - 1} stages, more than the {MAX_STAGES} allowed")
        stages = [_parse_stage(part, number) for number, part in enumerate(parts[1:], 1)]
        if not stages:
            raise ValueError(f"no stages after {stem_token!r}: expected -c.._d.._s.._k.. tokens")
        try:
            return cls(
                stem=int(width), stages=tuple(stages), stem_stride=_STEM_STRIDE_TEXT.get(stride, 1)
            )
        except ValueError as error:
            raise ValueError(f"bad architecture {text[:80]!r}: {error}") from None


_STAGE_KEYS = ("c", "d", "s", "k", "g", "p", "f", "a", "r")


def _parse_stage(part: str, number: int) -> Stage:
    tokens = part.split("_")
    if len(tokens) != len(_STAGE_KEYS):
        raise ValueError(
            f"stage {number} {part!r} has {len(tokens)} tokens, expected 9: "
            "c<width>_d<depth>_s<stride>_k<kernels>_g<segments>_p<place>_f<0|1>_a<0|1>_r<0|1>"
        )
    values: dict[str, str] = {}
    for key, token in zip(_STAGE_KEYS, tokens):
        if not token.startswith(key) or len(token) == len(key):
            raise ValueError(f"bad token {token!r} in stage {number}: expected {key}<value>")
        values[key] = token[len(key) :]

    def integer(key: str, what: str, high: int) -> int:
        if not _DIGITS.fullmatch(values[key]) or not 1 <= int(values[key]) <= high:
            allowed = "1 or 2" if high == 2 else f"an integer from 1 to {high}"
            raise ValueError(
                f"bad token {key + values[key]!r} in stage {number}: {what} must be {allowed}"
            )
        return int(values[key])

    def flag(key: str) -> bool:
        if values[key] not in ("0", "1"):
            raise ValueError(f"bad token {key + values[key]!r} in stage {number}: expected 0 or 1")
        return values[key] == "1"

    width, depth = integer("c", "width", MAX_WIDTH), integer("d", "depth", MAX_BLOCKS)
    stride = integer("s", "stride", max(STRIDES))
    segments: int | str = "dw" if values["g"] == "dw" else integer("g", "segments", MAX_WIDTH)
    factorize, mid_act, residual = flag("f"), flag("a"), flag("r")
    try:
        return Stage(
            width=width,
            depth=depth,
            stride=stride,
            branches=tuple(values["k"].split(".")),
            segments=segments,
            pointwise=values["p"],
            factorize=factorize,
            mid_act=mid_act,
            residual=residual,
        )
    except ValueError as error:
        raise ValueError(f"bad stage {number} {part!r}: {error}") from None


def decoupling_degree(arch: Arch) -> float:
    """How far the spatial step is split from the channel mix: 0 normal conv .. 1 depthwise.

    Per block, S = segments summed over branches (a spatial branch counts its groups, a 1 x 1 or
    pool branch counts one) and C = the channels those segments cover; the degree is
    log S / log C, averaged over blocks. A split into b branches thus counts as b segments, as in
    the Xception paper's framing.
    """
    degrees = []
    for stage, stage_in in zip(arch.stages, arch.stage_in_channels()):
        widths = branch_widths(stage.width, len(stage.branches))
        for in_chs in stage.block_in_channels(stage_in):
            segments = channels = 0
            for branch, branch_chs in zip(stage.branches, widths):
                convs = spatial_conv_shapes(
                    in_chs, branch_chs, branch, stage.pointwise, stage.factorize
                )
                if convs:
                    cin, cout = convs[0]
                    segments += resolve_groups(cin, cout, stage.segments)
                    channels += cin
                else:
                    segments += 1
                    channels += branch_chs
            degrees.append(math.log(segments) / math.log(channels) if channels > 1 else 0.0)
    return min(1.0, max(0.0, sum(degrees) / len(degrees)))
