"""An architecture as a value: frozen, hashable, with one canonical string (pure Python, no torch).

String form (stages joined by "-", knobs of a stage joined by "_"):

    stem16-c32_d2_s2_k3_g1_pnone_f0_a0_r0-c64_d2_s2_k1.3.5.pool_g1_pbefore_f1_a1_r0
    stem16s8-c32_d2_s2_k3_g1_pnone_f0_a0_r0-...   (the same stages behind a stride-8 stem)

    stemN     stem conv width (3 x 3, stride 1)
    stemL.N   a stem of two 3 x 3 convs, L then N channels (Xception's stem, with s2)
    stemNsS   the same with the stem's stride S (2, 4, 8 or 16), for large images: the conv
              takes stride 2, a max pool follows from 4 on, an average pool precedes from 8
              on (nas._plan.stem_plan); S is written only when it is not 1 (so stemNs1 is
              refused: it is spelled stemN)
    cN        stage width (output channels of every block)
    dN        depth (blocks in the stage; the knobs below are shared by them)
    sN        stride of the stage's first block (1 or 2); s2pre / s2post downsample by a 3x3
              stride-2 max pool before the block / after its branches instead of by the conv
    kA.B..    parallel branches, concatenated: spatial kernels 1/3/5/7, or pool / avgpool
              (a 3x3 max / average pool -> 1x1)
    gN | gdw  segments of each spatial conv (its groups): 1 = normal, dw = one per channel
    pX        where the 1x1 channel mix sits: none, before, after, both (bottleneck)
    f0 | f1   factorize k x k (k >= 5) into stacked 3 x 3
    a0 | a1   activation between the spatial and the pointwise step
    r0 | r1   residual connection around each block

Optional tokens follow, in this order, only where they differ from the default:

    wA.B..    each branch's output channels, in the order of k (default: equal shares)
    mA.B..    each branch's inner channels, between its convs (default: the branch's width):
              Inception's 1x1 reduce, ResNeXt's bottleneck, the middle of Xception's units
    nN        the branch's step ([1x1] -> spatial -> [1x1]) repeated N times (default 1)
    v1        pre-activation: a ReLU before each step, none after the block (Xception)
    b0        no BatchNorm between a spatial conv and the 1x1 after it (Xception)

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

from nas._channels import POOL_BRANCHES, branch_widths, resolve_groups, spatial_conv_shapes

BRANCH_ORDER = ("1", "3", "5", "7", "pool", "avgpool")
POINTWISE_PLACES = ("none", "before", "after", "both")
STRIDES = (1, 2)
# Where a stride-2 stage downsamples: its first spatial conv (and 1x1 branch) takes the stride,
# or a 3x3 stride-2 max pool comes before the block (GoogLeNet, between modules) or after its
# branches (Xception's units, whose shortcut then projects by a strided 1x1).
DOWNSAMPLES = ("conv", "pre", "post")
MAX_STEPS = 8
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


def _check_widths(what: str, key: str, values, count: int) -> tuple[int, ...] | None:
    """None, or `values` as a tuple of `count` channel counts (written `key`A.B.. in a string)."""
    if values is None:
        return None
    values = tuple(values)
    if len(values) != count:
        token = key + ".".join(map(str, values))
        raise ValueError(f"{what} {token} need one value per branch ({count}), got {len(values)}")
    for value in values:
        _check_count(what, value, MAX_WIDTH)
    return values


@dataclass(frozen=True)
class Stage:
    """One stage: `depth` blocks of `width` channels that share their knobs.

    The fields after `residual` came with the papers' blocks; their defaults build what every
    string written before them meant, and are written in a string (or a stage's plain-data
    spec, nas._plan.OPTIONAL_KNOBS) only where a stage differs from them.
    """

    width: int
    depth: int
    stride: int
    branches: tuple[str, ...]
    segments: int | str
    pointwise: str
    factorize: bool
    mid_act: bool
    residual: bool
    downsample: str = "conv"
    widths: tuple[int, ...] | None = None
    inner: tuple[int, ...] | None = None
    steps: int = 1
    preact: bool = False
    mid_bn: bool = True

    def __post_init__(self) -> None:
        _check_count("stage width", self.width, MAX_WIDTH)
        _check_count("stage depth", self.depth, MAX_BLOCKS)
        _check_count("steps", self.steps, MAX_STEPS)
        if self.stride not in STRIDES:
            raise ValueError(f"stage stride must be 1 or 2, got {self.stride!r}")
        if self.downsample not in DOWNSAMPLES:
            raise ValueError(
                f"downsample must be one of {', '.join(DOWNSAMPLES)}, got {self.downsample!r}"
            )
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
        widths = _check_widths("branch widths", "w", self.widths, len(branches))
        if widths is not None and sum(widths) != self.width:
            raise ValueError(
                f"branch widths w{'.'.join(map(str, widths))} sum to {sum(widths)}, "
                f"not the stage width {self.width}"
            )
        inner = _check_widths("inner widths", "m", self.inner, len(branches))
        if self.segments != "dw":
            _check_count("segments (or 'dw')", self.segments, MAX_WIDTH)
        if self.pointwise not in POINTWISE_PLACES:
            raise ValueError(
                f"pointwise must be one of {', '.join(POINTWISE_PLACES)}, got {self.pointwise!r}"
            )
        # Branches in their canonical order, their widths moved with them.
        order = sorted(range(len(branches)), key=lambda index: BRANCH_ORDER.index(branches[index]))
        object.__setattr__(self, "branches", tuple(branches[index] for index in order))
        for name, values in (("widths", widths), ("inner", inner)):
            if values is not None:
                object.__setattr__(self, name, tuple(values[index] for index in order))
        for flag in ("factorize", "mid_act", "residual", "preact", "mid_bn"):
            object.__setattr__(self, flag, bool(getattr(self, flag)))

    @property
    def spatial_kernels(self) -> tuple[int, ...]:
        """Kernels of the branches that have a spatial conv (k >= 3)."""
        return tuple(int(b) for b in self.branches if b != "1" and b not in POOL_BRANCHES)

    @property
    def branch_widths(self) -> tuple[int, ...]:
        """Each branch's output channels."""
        return self.widths or tuple(branch_widths(self.width, len(self.branches)))

    @property
    def branch_inner(self) -> tuple[int | None, ...]:
        """Each branch's inner channels (None: its width)."""
        return self.inner or (None,) * len(self.branches)

    def block_in_channels(self, stage_in_chs: int) -> list[int]:
        """Input channels of each block: the first block takes the previous stage's width."""
        return [stage_in_chs] + [self.width] * (self.depth - 1)

    def spatial_convs(self, stage_in_chs: int) -> list[tuple[int, int]]:
        """(in, out) channels of every spatial conv of every block in this stage."""
        shapes = []
        for in_chs in self.block_in_channels(stage_in_chs):
            for branch, branch_chs, inner in zip(
                self.branches, self.branch_widths, self.branch_inner
            ):
                shapes += spatial_conv_shapes(
                    in_chs, branch_chs, branch, self.pointwise, self.factorize, inner, self.steps
                )
        return shapes

    def _inner_matters(self, branch: str) -> bool:
        """Whether a branch has a channel count between its convs (so `inner` changes it)."""
        if branch == "1" or branch in POOL_BRANCHES:
            return False
        if self.pointwise in ("before", "both"):
            return True
        convs = len(spatial_conv_shapes(8, 8, branch, "none", self.factorize)) * self.steps
        return convs > 1 if self.pointwise == "none" else self.steps > 1

    def canonical(self, stage_in_chs: int) -> Stage:
        """The same network with every knob that cannot matter set to its one canonical value."""
        stage = self
        if stage.stride == 1:
            stage = replace(stage, downsample="conv")
        if stage.widths == tuple(branch_widths(stage.width, len(stage.branches))):
            stage = replace(stage, widths=None)
        if not stage.spatial_kernels:
            stage = replace(
                stage, segments=1, pointwise="none", factorize=False, mid_act=False, steps=1
            )
        if not any(kernel >= 5 for kernel in stage.spatial_kernels):
            stage = replace(stage, factorize=False)
        if stage.pointwise == "none":
            stage = replace(stage, mid_act=False)
        if stage.pointwise not in ("after", "both"):
            stage = replace(stage, mid_bn=True)  # no spatial conv is followed by a 1x1
        if stage.inner is not None:
            inner = tuple(
                chs if stage._inner_matters(branch) else width
                for branch, width, chs in zip(stage.branches, stage.branch_widths, stage.inner)
            )
            stage = replace(stage, inner=None if inner == stage.branch_widths else inner)
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
        """Everything but width, depth, stride and downsample: what blocks of a merged stage
        must share (the stride and its downsampling belong to the first block only)."""
        return (
            self.branches,
            self.segments,
            self.pointwise,
            self.factorize,
            self.mid_act,
            self.residual,
            self.widths,
            self.inner,
            self.steps,
            self.preact,
            self.mid_bn,
        )

    def to_token(self) -> str:
        """This stage's part of the canonical string."""
        stride = f"s{self.stride}" + ("" if self.downsample == "conv" else self.downsample)
        tokens = [
            f"c{self.width}",
            f"d{self.depth}",
            stride,
            "k" + ".".join(self.branches),
            f"g{self.segments}",
            f"p{self.pointwise}",
            f"f{int(self.factorize)}",
            f"a{int(self.mid_act)}",
            f"r{int(self.residual)}",
        ]
        if self.widths is not None:
            tokens.append("w" + ".".join(map(str, self.widths)))
        if self.inner is not None:
            tokens.append("m" + ".".join(map(str, self.inner)))
        if self.steps != 1:
            tokens.append(f"n{self.steps}")
        if self.preact:
            tokens.append("v1")
        if not self.mid_bn:
            tokens.append("b0")
        return "_".join(tokens)


@dataclass(frozen=True)
class Arch:
    """A whole network: stem conv -> stages -> global average pool -> linear head.

    `stem` is the stem's width (its last conv's channels); `stem_lead`, where set, the width of
    a first stem conv before it (Xception's two-conv stem). `stem_stride` is the stem's
    downsampling (see STEM_STRIDES): 1 keeps the input's resolution, as every network did
    before strided stems.
    """

    stem: int
    stages: tuple[Stage, ...]
    stem_stride: int = 1
    stem_lead: int | None = None

    def __post_init__(self) -> None:
        _check_count("stem width", self.stem, MAX_WIDTH)
        if self.stem_lead is not None:
            _check_count("stem lead width", self.stem_lead, MAX_WIDTH)
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

    @property
    def stem_widths(self) -> tuple[int, ...]:
        """The channels of each stem conv, in order."""
        return (self.stem,) if self.stem_lead is None else (self.stem_lead, self.stem)

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
        stem = "stem" + ".".join(map(str, self.stem_widths))
        stem += f"s{self.stem_stride}" if self.stem_stride != 1 else ""
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
        widths, strided, stride = stem_token[4:].partition("s")
        lead, dotted, width = widths.rpartition(".")
        if not stem_token.startswith("stem") or not all(
            text.isascii() and text.isdigit() for text in ([lead, width] if dotted else [width])
        ):
            raise ValueError(
                f"bad token {stem_token!r}: the string must start with stemN, stemL.N, "
                "stemNsS or stemL.NsS"
            )
        for text in [lead, width] if dotted else [width]:
            if not _DIGITS.fullmatch(text) or not 1 <= int(text) <= MAX_WIDTH:
                raise ValueError(f"bad token {stem_token!r}: stem widths must be 1 to {MAX_WIDTH}")
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
                stem=int(width),
                stages=tuple(stages),
                stem_stride=_STEM_STRIDE_TEXT.get(stride, 1),
                stem_lead=int(lead) if dotted else None,
            )
        except ValueError as error:
            raise ValueError(f"bad architecture {text[:80]!r}: {error}") from None


_STAGE_KEYS = ("c", "d", "s", "k", "g", "p", "f", "a", "r")
# Optional tokens after r, in their canonical order, and the one value each may be written with
# where the knob is a flag (its default is written by leaving the token out).
_OPTIONAL_KEYS = ("w", "m", "n", "v", "b")
_OPTIONAL_FLAGS = {"v": "1", "b": "0"}


def _parse_stage(part: str, number: int) -> Stage:
    tokens = part.split("_")
    if len(tokens) < len(_STAGE_KEYS):
        raise ValueError(
            f"stage {number} {part!r} has {len(tokens)} tokens, expected 9 and then optional "
            "ones: c<width>_d<depth>_s<stride>_k<kernels>_g<segments>_p<place>_f<0|1>_a<0|1>"
            "_r<0|1>[_w<widths>][_m<inner>][_n<steps>][_v1][_b0]"
        )
    values: dict[str, str] = {}
    for key, token in zip(_STAGE_KEYS, tokens):
        if not token.startswith(key) or len(token) == len(key):
            raise ValueError(f"bad token {token!r} in stage {number}: expected {key}<value>")
        values[key] = token[len(key) :]
    optional: dict[str, str] = {}
    for token in tokens[len(_STAGE_KEYS) :]:
        key = token[:1]
        later = [k for k in _OPTIONAL_KEYS if k in optional]
        if key not in _OPTIONAL_KEYS or len(token) == 1:
            raise ValueError(
                f"bad token {token!r} in stage {number}: after r only w, m, n, v1 and b0 may "
                "follow"
            )
        if later and _OPTIONAL_KEYS.index(key) <= _OPTIONAL_KEYS.index(later[-1]):
            raise ValueError(
                f"bad token {token!r} in stage {number}: optional tokens go once each, in the "
                "order w, m, n, v, b"
            )
        if key in _OPTIONAL_FLAGS and token[1:] != _OPTIONAL_FLAGS[key]:
            raise ValueError(
                f"bad token {token!r} in stage {number}: write {key}{_OPTIONAL_FLAGS[key]} or "
                "leave the token out for the default"
            )
        optional[key] = token[1:]

    def integer(key: str, what: str, high: int, text: str | None = None) -> int:
        text = values[key] if text is None else text
        if not _DIGITS.fullmatch(text) or not 1 <= int(text) <= high:
            allowed = "1 or 2" if high == 2 else f"an integer from 1 to {high}"
            token = key + (values[key] if key in values else optional[key])
            raise ValueError(f"bad token {token!r} in stage {number}: {what} must be {allowed}")
        return int(text)

    def flag(key: str) -> bool:
        if values[key] not in ("0", "1"):
            raise ValueError(f"bad token {key + values[key]!r} in stage {number}: expected 0 or 1")
        return values[key] == "1"

    def channel_list(key: str, what: str) -> tuple[int, ...] | None:
        if key not in optional:
            return None
        return tuple(integer(key, what, MAX_WIDTH, text) for text in optional[key].split("."))

    width, depth = integer("c", "width", MAX_WIDTH), integer("d", "depth", MAX_BLOCKS)
    stride_text = values["s"].rstrip("abcdefghijklmnopqrstuvwxyz")
    downsample = values["s"][len(stride_text) :] or "conv"
    if downsample not in ("pre", "post") or stride_text != "2":
        if downsample != "conv":
            raise ValueError(
                f"bad token {'s' + values['s']!r} in stage {number}: write s1, s2, s2pre or s2post"
            )
    values["s"] = stride_text
    stride = integer("s", "stride", max(STRIDES))
    segments: int | str = "dw" if values["g"] == "dw" else integer("g", "segments", MAX_WIDTH)
    factorize, mid_act, residual = flag("f"), flag("a"), flag("r")
    steps = integer("n", "steps", MAX_STEPS, optional["n"]) if "n" in optional else 1
    if steps == 1 and "n" in optional:
        raise ValueError(
            f"bad token 'n1' in stage {number}: one step is the default, leave it out"
        )
    try:
        stage = Stage(
            width=width,
            depth=depth,
            stride=stride,
            branches=tuple(values["k"].split(".")),
            segments=segments,
            pointwise=values["p"],
            factorize=factorize,
            mid_act=mid_act,
            residual=residual,
            downsample=downsample,
            widths=channel_list("w", "a branch width"),
            inner=channel_list("m", "an inner width"),
            steps=steps,
            preact="v" in optional,
            mid_bn="b" not in optional,
        )
    except ValueError as error:
        raise ValueError(f"bad stage {number} {part!r}: {error}") from None
    return stage
