"""One trial as plain data: its facts, curves, cost table and the block diagram of its network.

The diagram draws the layer plan (`nas._plan`) that the builder builds from, so the boxes drawn
are the layers built.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import NamedTuple

import pandas as pd
from optuna.trial import FrozenTrial

from dashboard.storage import StudyInfo
from nas import Arch
from nas._data_choice import class_names_text
from nas._plan import BranchPlan, Layer, arch_plan, stem_channels, stem_plan, stem_words
from nas.record import DEFAULT_OBJECTIVES, TrialRecord, finite, objective_value


class Op(NamedTuple):
    """One layer of a branch: kind is "pointwise", "spatial" or "pool"."""

    kind: str
    label: str
    detail: str
    decoupling: float  # log groups / log channels of a spatial conv; NaN for other kinds


class BranchView(NamedTuple):
    name: str
    channels: int
    ops: tuple[Op, ...]


class StageView(NamedTuple):
    title: str
    summary: str
    branches: tuple[BranchView, ...]
    merge: str  # how branch outputs join: "concatenate" or ""
    residual: str  # "identity", "1x1 projection", or "" (no residual)


class TrialDetails(NamedTuple):
    study: str
    number: int
    state: str
    arch: str
    facts: tuple[tuple[str, str], ...]
    val_curve: tuple[float, ...]
    loss_curve: tuple[float, ...]
    pruned_at: int | None
    input_shape: tuple[int, ...] | None
    num_classes: int
    params: tuple[tuple[str, str], ...] = ()  # Trial.params, name and value as text
    reports: tuple[tuple[int, float], ...] = ()  # Trial.report: (step, value), by step
    ours: bool = True  # made by nas.search: it has a validation curve to draw


def si(value: float, unit: str = "") -> str:
    """12345678 -> '12.35 M' (+ unit); NaN -> 'n/a'."""
    if value is None or not math.isfinite(value):
        return "n/a"
    for scale, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.2f} {prefix}{unit}".rstrip()
    return f"{value:g} {unit}".rstrip()


def dataset_fact(attrs: dict) -> str | None:
    """The study's data in one line: name, image shape, classes and their names (as text)."""
    name = attrs.get("dataset_name") or attrs.get("dataset")
    if not isinstance(name, str):
        return None
    about = []
    shape = attrs.get("input_shape")
    if isinstance(shape, list) and all(isinstance(size, int) for size in shape):
        about.append("x".join(map(str, shape)))
    names = attrs.get("class_names")
    if isinstance(names, list) and names:
        about.append(f"{len(names)} classes: {class_names_text(names)}")
    return f"{name} ({'; '.join(about)})" if about else name


def trial_details(info: StudyInfo, trial: FrozenTrial) -> TrialDetails:
    """What the trial page shows, from the trial and its study's attributes."""
    record = TrialRecord.from_trial(trial)
    accuracy = objective_value(trial, "val_acc", info.objectives)
    macs = objective_value(trial, "macs", info.objectives)
    facts: list[tuple[str, str]] = [("state", trial.state.name)]
    if accuracy is not None:
        facts.append(("validation accuracy", f"{accuracy:.4f}"))
    if macs is not None:
        facts.append(("MACs", f"{si(macs)} multiply-accumulates (= {si(2 * macs)} FLOPs)"))
    optional = [
        ("params", "parameters", lambda v: si(v)),
        ("latency_ms", "latency (batch 1, median)", lambda v: f"{v:.3f} ms"),
        ("decoupling", "decoupling degree", lambda v: f"{v:.3f} (0 normal conv, 1 depthwise)"),
        ("landmark", "landmark", str),
        ("duplicate_of", "duplicate of trial", str),
        ("pruned_at_epoch", "pruned at epoch", str),
        ("pruned_by", "pruned because", str),
        ("constraint", "skipped by constraint", str),
        ("failure", "failure", str),
        ("train_seconds", "training time", lambda v: f"{v:.1f} s"),
        ("budget", "budget (epochs x examples)", str),
        ("device", "device", str),
    ]
    for key, label, show in optional:
        value = getattr(record, key)
        if value is not None:
            facts.append((label, show(value)))
    # Objectives the record has no fact for are listed by their name; a plain Optuna study's
    # (it records none) by its own labels.
    names = info.objectives or info.labels
    for index, (name, value) in enumerate(zip(names, trial.values or ())):
        recorded = info.objectives and name in DEFAULT_OBJECTIVES
        if not recorded and finite(value) is not None:
            direction = info.directions[index] if index < len(info.directions) else ""
            facts.append((name, f"{value:.6g}" + (f" ({direction}d)" if direction else "")))
    dataset = dataset_fact(info.attrs)
    if dataset is not None:
        facts.append(("dataset", dataset))
    shape = info.attrs.get("input_shape")
    return TrialDetails(
        study=info.name,
        number=trial.number,
        state=trial.state.name,
        arch=record.arch or "",
        facts=tuple(facts),
        val_curve=record.val_acc_curve or (),
        loss_curve=record.train_loss_curve or (),
        pruned_at=record.pruned_at_epoch,
        input_shape=tuple(int(size) for size in shape) if shape else None,
        num_classes=int(info.attrs.get("num_classes") or 10),
        params=tuple((name, param_text(value)) for name, value in trial.params.items()),
        reports=tuple(
            (int(step), float(value))
            for step, value in sorted(trial.intermediate_values.items())
            if finite(value) is not None
        ),
        ours=bool(info.objectives),
    )


def param_text(value) -> str:
    """A parameter value as the page shows it: floats to 6 significant digits."""
    return f"{value:.6g}" if isinstance(value, float) else str(value)


# The trial page counts costs by building the network (torch). Above this many conv weights
# (400 MB of float32; Xception has 23 M) a stored architecture would take the server's memory,
# so the page says so instead of counting.
MAX_COUNTED_WEIGHTS = 100_000_000


def conv_weights(arch: Arch) -> int:
    """Weights of every conv the plan holds but the stem's (no torch): what building costs."""
    total = 0
    for blocks in arch_plan(arch):
        for block in blocks:
            layers = [layer for branch in block.branches for layer in branch.layers]
            for layer in layers + ([block.projection] if block.projection else []):
                total += layer.weights
    return total


@lru_cache(maxsize=256)
def cost_table(arch_text: str, input_shape: tuple[int, ...], num_classes: int) -> pd.DataFrame:
    """Per-part cost (stem, each block, head) with a total row; builds the network (torch)."""
    from nas.cost import part_costs

    parts = part_costs(arch_text, input_shape, num_classes)
    table = pd.DataFrame(
        {
            "part": [part.name for part in parts],
            "MACs": [part.macs for part in parts],
            "params": [part.params for part in parts],
            "share of MACs": [part.share for part in parts],
        }
    )
    total = {"part": "total", "MACs": table["MACs"].sum(), "params": table["params"].sum()}
    return pd.concat([table, pd.DataFrame([{**total, "share of MACs": 1.0}])], ignore_index=True)


def _groups_text(groups: int, channels: int) -> str:
    if groups == 1:
        return "1 segment"
    if groups == channels:
        return f"depthwise ({groups} segments)"
    return f"{groups} segments of {channels // groups} ch"


def _layer_op(layer: Layer, later: Layer | None) -> Op:
    """One planned layer as a box; `later` is the same layer in the stage's later blocks."""
    stride = f", stride {layer.stride}" if layer.stride > 1 else ""
    relu = " · ReLU" if layer.relu else ""
    relu += " · no BN" if layer.kind in ("pointwise", "spatial") and not layer.bn else ""
    first = "ReLU, then " if layer.pre_relu else ""
    size = f"{layer.kernel}x{layer.kernel}"
    if layer.kind in ("pool", "avg"):
        label = f"{size} {'max' if layer.kind == 'pool' else 'average'} pool"
        return Op("pool", label, f"{first}{layer.in_chs} ch{stride}", math.nan)
    channels = f"{first}{layer.in_chs} → {layer.out_chs} ch{stride}"
    if layer.kind == "pointwise":
        return Op("pointwise", "1x1 conv", channels + relu, math.nan)
    text = _groups_text(layer.groups, layer.in_chs)
    if later is not None and (later.in_chs, later.out_chs) != (layer.in_chs, layer.out_chs):
        text += f"; later blocks {_groups_text(later.groups, later.in_chs)}"
    degree = math.log(layer.groups) / math.log(layer.in_chs) if layer.in_chs > 1 else 0.0
    return Op("spatial", f"{size} conv", f"{channels} · {text}{relu}", degree)


def _branch_ops(first: BranchPlan, later: BranchPlan | None) -> list[Op]:
    """The layers of one branch of a stage's first block (groups of later blocks noted)."""
    later_layers = later.layers if later is not None else (None,) * len(first.layers)
    return [_layer_op(layer, other) for layer, other in zip(first.layers, later_layers)]


def stem_text(arch: Arch, in_chs: int | None) -> str:
    """The stem's box, from its layer plan: '3x3 conv stride 2, 3x3 max pool stride 2, 3 → 16
    ch'.

    Args:
        arch: the architecture.
        in_chs: image channels, or None where the study does not record its input shape.
    """
    layers = stem_plan(in_chs or 1, stem_channels(arch), arch.stem_stride)
    widths = " → ".join(map(str, arch.stem_widths))
    return f"{stem_words(layers)}, {in_chs or 'image'} → {widths} ch"


# Branches named as in the architecture string; the pool kind is in the first box.
BRANCH_NAMES = {"pool": "pool", "avgpool": "avgpool"}
DOWNSAMPLE_WORDS = {"pre": "max pool before", "post": "max pool after the branches"}


def arch_diagram(arch: Arch) -> tuple[StageView, ...]:
    """One view per stage: its first block's parallel branches, layer by layer."""
    views = []
    for number, (stage, blocks) in enumerate(zip(arch.stages, arch_plan(arch)), 1):
        first = blocks[0]
        later = blocks[1].branches if len(blocks) > 1 else (None,) * len(first.branches)
        branches = tuple(
            BranchView(
                BRANCH_NAMES.get(branch.branch, f"{branch.branch}x{branch.branch}"),
                branch.out_chs,
                tuple(_branch_ops(branch, other)),
            )
            for branch, other in zip(first.branches, later)
        )
        residual = ""
        if first.residual:
            residual = (
                "identity"
                if first.projection is None
                else "1x1 projection (first block), identity after"
            )
        blocks_word = "block" if stage.depth == 1 else "blocks"
        extras = [DOWNSAMPLE_WORDS[stage.downsample]] if stage.downsample != "conv" else []
        extras += [f"{stage.steps} steps"] if stage.steps > 1 else []
        extras += ["pre-activation"] if stage.preact else []
        views.append(
            StageView(
                title=f"stage {number}",
                summary=f"{stage.depth} {blocks_word} x {stage.width} ch, stride {stage.stride}, "
                f"1x1 {stage.pointwise}" + "".join(f", {extra}" for extra in extras),
                branches=branches,
                merge="concatenate" if first.concatenates else "",
                residual=residual,
            )
        )
    return tuple(views)
