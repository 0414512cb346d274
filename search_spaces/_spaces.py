"""Search spaces: each maps an Optuna trial to an `Arch` and never touches torch.

Parameter names are stable (stored studies depend on them): `stem_width`, and per stage i
(1-based) `s{i}_width`, `s{i}_depth`, `s{i}_branches`, `s{i}_segments`, `s{i}_pointwise`,
`s{i}_factorize`, `s{i}_mid_act`, `s{i}_residual`. Categorical values are strings so that
Optuna stores them the same way in every backend. A space sized for larger images
(`SearchSpace.for_input`) has the same parameters and choices; only its stem stride differs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from nas import Arch, Stage
from search_spaces._landmarks import SKELETON, STEM, landmark, stem_stride_for

# Branch sets the space offers: single kernels (normal .. separable) and Inception-style splits.
BRANCH_CHOICES = ("3", "5", "7", "1.3", "3.5", "1.3.5", "1.3.pool", "3.5.7", "1.3.5.pool")
SEGMENT_CHOICES = ("1", "2", "4", "8", "16", "dw")
POINTWISE_CHOICES = ("none", "before", "after", "both")
FLAG_CHOICES = ("0", "1")


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
        """The architecture for an Optuna trial (or FixedTrial); suggests every parameter."""
        params = {
            name: trial.suggest_categorical(name, list(values)) if len(values) > 1 else values[0]
            for name, values in self.choices.items()
        }
        return self.arch_from_params(params)

    def arch_from_params(self, params: dict[str, str]) -> Arch:
        """Build the architecture from a complete parameter assignment."""
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

            def get(knob: str, index: int = index) -> str:
                return str(params[f"s{index}_{knob}"])

            segments = get("segments")
            stages.append(
                Stage(
                    width=int(get("width")),
                    depth=int(get("depth")),
                    stride=stride,
                    branches=tuple(get("branches").split(".")),
                    segments="dw" if segments == "dw" else int(segments),
                    pointwise=get("pointwise"),
                    factorize=get("factorize") == "1",
                    mid_act=get("mid_act") == "1",
                    residual=get("residual") == "1",
                )
            )
        return Arch(
            stem=int(params["stem_width"]), stages=tuple(stages), stem_stride=self.stem_stride
        )

    def params_for(self, arch: Arch) -> dict[str, str] | None:
        """A parameter assignment that samples exactly `arch`, or None if the space lacks it.

        Used to seed studies with the landmarks (Optuna's enqueue_trial takes parameters).
        """
        if len(arch.stages) != len(self.strides) or arch.stem_stride != self.stem_stride:
            return None
        params = {"stem_width": str(arch.stem)}
        for index, stage in enumerate(arch.stages, 1):
            params.update(
                {
                    f"s{index}_width": str(stage.width),
                    f"s{index}_depth": str(stage.depth),
                    f"s{index}_branches": ".".join(stage.branches),
                    f"s{index}_segments": str(stage.segments),
                    f"s{index}_pointwise": stage.pointwise,
                    f"s{index}_factorize": str(int(stage.factorize)),
                    f"s{index}_mid_act": str(int(stage.mid_act)),
                    f"s{index}_residual": str(int(stage.residual)),
                }
            )
        # Canonical values may be outside the offered choices; fall back to any choice that
        # canonicalizes to the same network (e.g. a knob that does not matter for this stage).
        for name, value in list(params.items()):
            if value not in self.choices[name]:
                for candidate in self.choices[name]:
                    if self.arch_from_params({**params, name: candidate}) == arch:
                        params[name] = candidate
                        break
                else:
                    return None
        return {name: params[name] for name in self.choices}

    def size(self) -> int:
        """Number of distinct parameter assignments (architectures are fewer: see canonical)."""
        return math.prod(len(values) for values in self.choices.values())


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
            )
        )
    return SearchSpace(
        name="inception_to_xception",
        description="the full spectrum: branches, segments, 1x1 place, factorization, "
        "mid activation, residual, width and depth per stage",
        choices=choices,
    )


def xception_spectrum() -> SearchSpace:
    """Only the segments sweep, 1 .. one per channel, on the Xception block (the paper's gap)."""
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
