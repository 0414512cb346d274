"""One trial as plain data: its facts, curves, cost table and the block diagram of its network.

The diagram data follows the builder (`nas.blocks.make_branch`) step by step, using the same
channel arithmetic (`nas._channels`), so the boxes drawn are the layers built.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import NamedTuple

import pandas as pd
from optuna.trial import FrozenTrial

from dashboard.storage import StudyInfo
from nas import Arch, Stage
from nas._channels import branch_widths, factorized_kernels, resolve_groups, spatial_conv_shapes
from nas.record import TrialRecord, objective_value


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


def si(value: float, unit: str = "") -> str:
    """12345678 -> '12.35 M' (+ unit); NaN -> 'n/a'."""
    if value is None or not math.isfinite(value):
        return "n/a"
    for scale, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.2f} {prefix}{unit}".rstrip()
    return f"{value:g} {unit}".rstrip()


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
    )


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


def _branch_ops(stage: Stage, in_chs: int, later_in: int, out_chs: int, branch: str) -> list[Op]:
    """The layers of one branch of a stage's first block (groups of later blocks noted)."""
    stride = f", stride {stage.stride}" if stage.stride > 1 else ""
    if branch == "pool":
        return [
            Op("pool", "3x3 max pool", f"{in_chs} ch{stride}", math.nan),
            Op("pointwise", "1x1 conv", f"{in_chs} → {out_chs} ch", math.nan),
        ]
    if branch == "1":
        return [Op("pointwise", "1x1 conv", f"{in_chs} → {out_chs} ch{stride}", math.nan)]
    ops: list[Op] = []
    relu = " · ReLU" if stage.mid_act else ""
    if stage.pointwise in ("before", "both"):
        ops.append(Op("pointwise", "1x1 conv", f"{in_chs} → {out_chs} ch{relu}", math.nan))
    kernels = factorized_kernels(int(branch), stage.factorize)
    shapes = spatial_conv_shapes(in_chs, out_chs, branch, stage.pointwise, stage.factorize)
    later = spatial_conv_shapes(later_in, out_chs, branch, stage.pointwise, stage.factorize)
    for index, (kernel, (cin, cout), (lin, lout)) in enumerate(zip(kernels, shapes, later)):
        groups = resolve_groups(cin, cout, stage.segments)
        text = _groups_text(groups, cin)
        if stage.depth > 1 and (lin, lout) != (cin, cout):
            text += (
                f"; later blocks {_groups_text(resolve_groups(lin, lout, stage.segments), lin)}"
            )
        last = index == len(kernels) - 1
        act = not last or (stage.mid_act and stage.pointwise in ("after", "both"))
        first_stride = stride if index == 0 else ""
        detail = f"{cin} → {cout} ch{first_stride} · {text}" + (" · ReLU" if act else "")
        degree = math.log(groups) / math.log(cin) if cin > 1 else 0.0
        ops.append(Op("spatial", f"{kernel}x{kernel} conv", detail, degree))
    if stage.pointwise in ("after", "both"):
        ops.append(Op("pointwise", "1x1 conv", f"{shapes[-1][1]} → {out_chs} ch", math.nan))
    return ops


def arch_diagram(arch: Arch) -> tuple[StageView, ...]:
    """One view per stage: its first block's parallel branches, layer by layer."""
    views = []
    for number, (stage, in_chs) in enumerate(zip(arch.stages, arch.stage_in_channels()), 1):
        widths = branch_widths(stage.width, len(stage.branches))
        branches = tuple(
            BranchView(
                "pool" if branch == "pool" else f"{branch}x{branch}",
                width,
                tuple(_branch_ops(stage, in_chs, stage.width, width, branch)),
            )
            for branch, width in zip(stage.branches, widths)
        )
        residual = ""
        if stage.residual:
            projects = in_chs != stage.width or stage.stride != 1
            residual = "1x1 projection (first block), identity after" if projects else "identity"
        blocks = "block" if stage.depth == 1 else "blocks"
        views.append(
            StageView(
                title=f"stage {number}",
                summary=f"{stage.depth} {blocks} x {stage.width} ch, stride {stage.stride}, "
                f"1x1 {stage.pointwise}",
                branches=branches,
                merge="concatenate" if len(branches) > 1 else "",
                residual=residual,
            )
        )
    return tuple(views)
