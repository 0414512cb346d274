"""Search spaces: each maps an Optuna trial to an `Arch` and never touches torch.

Parameter names are stable (stored studies depend on them): `stem_width`, and per stage i
(1-based) `s{i}_width`, `s{i}_depth`, `s{i}_branches`, `s{i}_segments`, `s{i}_pointwise`,
`s{i}_factorize`, `s{i}_mid_act`, `s{i}_residual`, and, since the papers' blocks,
`s{i}_split` (branch-width proportions: equal, googlenet, inception_v3), `s{i}_inner` (inner
width over branch width: 1, 0.5), `s{i}_unit` (plain, pool_first, xception) and `s{i}_pool`
(the pool branch's pool: max, avg); search_spaces._landmarks says what each value builds.

The choices of a parameter never change once offered: Optuna refuses to continue a stored
study whose parameter's choices differ. A trial stored before a parameter existed lacks it;
wherever parameters become an architecture, a missing later knob takes its value in
LATER_KNOB_DEFAULTS, which builds what the trial built then. Categorical values are strings so
that Optuna stores them the same way in every backend. A space sized for larger images
(`SearchSpace.for_input`) has the same parameters and choices; only its stem stride differs.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import MISSING, dataclass, field, fields, replace
from typing import Any

from nas import Arch, Stage
from search_spaces._landmarks import (
    INNERS,
    POOL_KINDS,
    SKELETON,
    SPLITS,
    STEM,
    UNITS,
    Block,
    landmark,
    stem_stride_for,
)

# Branch sets the space offers: single kernels (normal .. separable) and Inception-style splits.
BRANCH_CHOICES = ("3", "5", "7", "1.3", "3.5", "1.3.5", "1.3.pool", "3.5.7", "1.3.5.pool")
SEGMENT_CHOICES = ("1", "2", "4", "8", "16", "dw")
POINTWISE_CHOICES = ("none", "before", "after", "both")
FLAG_CHOICES = ("0", "1")
SPLIT_CHOICES = tuple(SPLITS)
INNER_CHOICES = tuple(INNERS)
UNIT_CHOICES = tuple(UNITS)
POOL_CHOICES = tuple(POOL_KINDS)

# Each stage's parameters are s{i}_{knob}: the knobs that every space has had, then those that
# came with the papers' blocks, with the value that builds what a trial stored before them built
# (the one table of those defaults: a stored trial that lacks one of them gets it from here).
EARLIER_KNOBS = (
    "width",
    "depth",
    "branches",
    "segments",
    "pointwise",
    "factorize",
    "mid_act",
    "residual",
)
LATER_KNOB_DEFAULTS = {
    field.name: field.default for field in fields(Block) if field.default is not MISSING
}
STAGE_KNOBS = EARLIER_KNOBS + tuple(LATER_KNOB_DEFAULTS)


@dataclass(frozen=True)
class SearchSpace:
    """A named space: what each parameter may take, and how a full assignment becomes an Arch.

    Attributes:
        name: registry name.
        description: one line for `--list-spaces`.
        choices: parameter name -> allowed string values (a fixed knob has one value).
        strides: stride of each stage's first block (fixed: three halvings of the input).
        stem_stride: the stem's downsampling of every architecture (fixed: see `for_input`).
    """

    name: str
    description: str
    choices: dict[str, tuple[str, ...]]
    strides: tuple[int, ...] = field(default=(2, 2, 2))
    stem_stride: int = 1

    def for_input(self, input_shape: tuple[int, ...]) -> SearchSpace:
        """This space for images of `input_shape` (C, H, W): its stem stride is the one
        `stem_stride_for` chooses, so the stages see about the resolution they were designed
        for. The parameters and their choices stay as they are."""
        stride = stem_stride_for(input_shape)
        return self if stride == self.stem_stride else replace(self, stem_stride=stride)

    def sample(self, trial: Any) -> Arch:
        """The architecture for an Optuna trial (or FixedTrial); suggests every parameter.

        A retry of a trial stored before the later knobs is enqueued with them at their
        defaults (`with_later_defaults`), so that it builds what the stored trial built.
        """
        params = {
            name: trial.suggest_categorical(name, list(values)) if len(values) > 1 else values[0]
            for name, values in self.choices.items()
        }
        return self.arch_from_params(params)

    @property
    def stage_knobs(self) -> tuple[str, ...]:
        """The per-stage knobs this space has parameters for (s{i}_{knob}), in STAGE_KNOBS'
        order; a later knob it lacks keeps its LATER_KNOB_DEFAULTS value."""
        return tuple(knob for knob in STAGE_KNOBS if f"s1_{knob}" in self.choices)

    def stage_from_knobs(self, knobs: dict[str, str], stride: int) -> Stage:
        """One stage from its knobs' values as sampled (a later knob may be missing)."""
        knobs = {**LATER_KNOB_DEFAULTS, **knobs}
        segments = str(knobs["segments"])
        block = Block(
            branches=tuple(str(knobs["branches"]).split(".")),
            segments="dw" if segments == "dw" else int(segments),
            pointwise=str(knobs["pointwise"]),
            factorize=str(knobs["factorize"]) == "1",
            mid_act=str(knobs["mid_act"]) == "1",
            residual=str(knobs["residual"]) == "1",
            **{knob: str(knobs[knob]) for knob in LATER_KNOB_DEFAULTS},
        )
        return block.stage(int(knobs["width"]), int(knobs["depth"]), stride)

    def arch_from_params(self, params: dict[str, str]) -> Arch:
        """Build the architecture from a complete parameter assignment.

        A later knob (LATER_KNOB_DEFAULTS) may be missing: a trial stored before it existed
        built what its default builds.
        """
        params = with_later_defaults(params)
        missing = [name for name in self.choices if name not in params]
        if missing:
            raise ValueError(f"missing parameters for space {self.name}: {', '.join(missing)}")
        for name, value in params.items():
            if name in self.choices and str(value) not in self.choices[name]:
                raise ValueError(
                    f"parameter {name}={value!r} is not in space {self.name}: "
                    f"choose from {', '.join(self.choices[name])}"
                )
        stages = []
        for index, stride in enumerate(self.strides, 1):
            knobs = {
                knob: params[f"s{index}_{knob}"]
                for knob in STAGE_KNOBS
                if f"s{index}_{knob}" in params
            }
            stages.append(self.stage_from_knobs(knobs, stride))
        return Arch(
            stem=int(params["stem_width"]), stages=tuple(stages), stem_stride=self.stem_stride
        )

    def params_for(self, arch: Arch) -> dict[str, str] | None:
        """A parameter assignment that samples exactly `arch`, or None if the space lacks it.

        Used to seed studies with the landmarks (Optuna's enqueue_trial takes parameters).
        """
        if len(arch.stages) != len(self.strides) or arch.stem_stride != self.stem_stride:
            return None
        if arch.stem_lead is not None or str(arch.stem) not in self.choices["stem_width"]:
            return None
        params = {"stem_width": str(arch.stem)}
        for index, (stage, stride) in enumerate(zip(arch.stages, self.strides), 1):
            if stage.stride != stride:
                return None
            found = self._stage_params(index, stage, params)
            if found is None:
                return None
            params.update(found)
        if self.arch_from_params(params) != arch:
            return None  # a stage that canonicalizes with its neighbours
        return {name: params[name] for name in self.choices}

    def _stage_params(self, index: int, stage: Stage, earlier: dict) -> dict | None:
        """Values of stage `index`'s parameters that build `stage` behind the stages set in
        `earlier`, or None. The earlier knobs are read off the stage (a canonical value the
        space lacks is replaced by any choice that builds the same); the later ones are tried
        in turn, defaults first."""
        name = f"s{index}_{{}}".format
        pools = {kind: key for key, kind in POOL_KINDS.items()}
        branches = ["pool" if branch in pools else branch for branch in stage.branches]
        guess = {
            "width": str(stage.width),
            "depth": str(stage.depth),
            "branches": ".".join(branches),
            "segments": str(stage.segments),
            "pointwise": stage.pointwise,
            "factorize": str(int(stage.factorize)),
            "mid_act": str(int(stage.mid_act)),
            "residual": str(int(stage.residual)),
        }
        later = [knob for knob in self.stage_knobs if knob in LATER_KNOB_DEFAULTS]

        def options(knob: str) -> tuple[str, ...]:
            values = self.choices[name(knob)]
            first = LATER_KNOB_DEFAULTS[knob]
            return tuple(sorted(values, key=lambda value: value != first))

        def builds(candidate: dict) -> bool:
            params = {**earlier, **{name(knob): value for knob, value in candidate.items()}}
            built = self.arch_from_params(self._filled(params, index))
            return len(built.stages) >= index and built.stages[index - 1] == stage

        for values in itertools.product(*(options(knob) for knob in later)):
            candidate = {**guess, **dict(zip(later, values))}
            for knob in EARLIER_KNOBS:
                if candidate[knob] in self.choices[name(knob)]:
                    continue
                for value in self.choices[name(knob)]:
                    if builds({**candidate, knob: value}):
                        candidate[knob] = value
                        break
                else:
                    break
            else:
                if builds(candidate):
                    return {name(knob): candidate[knob] for knob in self.stage_knobs}
        return None

    def _filled(self, params: dict, upto: int) -> dict:
        """`params` with the stages after `upto` (not yet chosen) given their first choices."""
        rest = {
            name: values[0]
            for name, values in self.choices.items()
            if name not in params and _stage_of(name) > upto
        }
        return {**params, **rest}

    def size(self) -> int:
        """Number of distinct parameter assignments (architectures are fewer: see canonical)."""
        return math.prod(len(values) for values in self.choices.values())


def with_later_defaults(params: dict) -> dict:
    """Stored parameters completed with LATER_KNOB_DEFAULTS for each stage they name, so that a
    trial enqueued with them (a retry) builds what they built before the later knobs existed:
    a knob left out would be the sampler's to pick."""
    stages = sorted({_stage_of(name) for name in params} - {0})
    later = {f"s{i}_{knob}": value for i in stages for knob, value in LATER_KNOB_DEFAULTS.items()}
    return {**later, **params}


def _stage_of(name: str) -> int:
    """The stage a parameter s{i}_{knob} belongs to (0 for another parameter)."""
    head = name.split("_", 1)[0]
    return int(head[1:]) if head[:1] == "s" and head[1:].isdigit() else 0


def _stage_choices(index: int, **knobs: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    return {f"s{index}_{knob}": values for knob, values in knobs.items()}


def inception_to_xception() -> SearchSpace:
    """The full space (docs/design.md): every block knob per stage, plus widths, depths, stem."""
    widths = (("16", "24", "32", "48"), ("32", "48", "64", "96"), ("64", "96", "128", "192"))
    choices: dict[str, tuple[str, ...]] = {"stem_width": ("8", "16", "24", "32")}
    for index, stage_widths in enumerate(widths, 1):
        choices.update(
            _stage_choices(
                index,
                width=stage_widths,
                depth=("1", "2", "3"),
                branches=BRANCH_CHOICES,
                segments=SEGMENT_CHOICES,
                pointwise=POINTWISE_CHOICES,
                factorize=FLAG_CHOICES,
                mid_act=FLAG_CHOICES,
                residual=FLAG_CHOICES,
                split=SPLIT_CHOICES,
                inner=INNER_CHOICES,
                unit=UNIT_CHOICES,
                pool=POOL_CHOICES,
            )
        )
    return SearchSpace(
        name="inception_to_xception",
        description="the full spectrum: branches, segments, 1x1 place, factorization, "
        "mid activation, residual, branch widths, inner width, unit, pool, width and depth "
        "per stage",
        choices=choices,
    )


def xception_spectrum() -> SearchSpace:
    """Only the segments sweep, 1 .. one per channel, on the Xception block (the paper's gap).

    Every other knob is fixed (one choice: not a trial parameter, so never stored), the unit
    included: the sweep's last point is the `xception` landmark.
    """
    base = landmark("xception")
    most = max(stage.width for stage in base.stages)
    sweep = tuple(str(2**power) for power in range(int(math.log2(most)))) + ("dw",)
    choices: dict[str, tuple[str, ...]] = {"stem_width": (str(STEM),)}
    for index, (width, depth, _stride) in enumerate(SKELETON, 1):
        choices.update(
            _stage_choices(
                index,
                width=(str(width),),
                depth=(str(depth),),
                branches=("3",),
                pointwise=("after",),
                factorize=("0",),
                mid_act=("0",),
                residual=("1",),
                unit=("xception",),
            )
        )
    # One shared parameter for all stages: the spectrum point is a property of the network.
    return _SharedSegmentsSpace(
        name="xception_spectrum",
        description="Xception block with everything fixed but segments: 1, 2, 4, ... "
        "one per channel",
        choices={**choices, "segments": sweep},
    )


@dataclass(frozen=True)
class _SharedSegmentsSpace(SearchSpace):
    """A space whose stages share one `segments` parameter."""

    def arch_from_params(self, params: dict[str, str]) -> Arch:
        shared = {f"s{index}_segments": params["segments"] for index in (1, 2, 3)}
        choices = {**self.choices, **{name: tuple(SEGMENT_CHOICES_ALL) for name in shared}}
        plain = SearchSpace(self.name, self.description, choices, self.strides, self.stem_stride)
        return plain.arch_from_params({**params, **shared})

    def params_for(self, arch: Arch) -> dict[str, str] | None:
        if arch.stem_stride != self.stem_stride:
            return None
        for value in self.choices["segments"]:
            params = {name: values[0] for name, values in self.choices.items()}
            params["segments"] = value
            if self.arch_from_params(params) == arch:
                return params
        return None


SEGMENT_CHOICES_ALL = tuple(str(2**power) for power in range(12)) + ("dw",)
