"""The layer plan: the builder builds it, the dashboard's diagram draws it, and they agree."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from dataclasses import MISSING, asdict, fields

import pytest
from torch import nn

from dashboard.trial_data import arch_diagram
from nas import Arch, Stage, build_model
from nas._plan import OPTIONAL_KNOBS, arch_plan, stage_specs
from search_spaces import LANDMARKS
from tests.arch_samples import PAPER_BLOCKS, distinct_random_archs
from tests.module_facts import LayerFacts, branch_facts, layer_facts, out_channels

# Every landmark and a sample of each space, at the widths the search builds.
ARCHS = [
    *PAPER_BLOCKS,
    *LANDMARKS.values(),
    *distinct_random_archs("inception_to_xception", 30, seed=11),
    *distinct_random_archs("xception_spectrum", 10, seed=11),
]


def test_the_plan_needs_no_torch():
    code = "import sys, nas._plan; print(sorted(m for m in sys.modules if m.startswith('torch')))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.strip() == "[]"


def test_stage_specs_are_the_stage_fields_in_order():
    """A spec holds a stage's fields in order, the papers' knobs only where they differ from
    what earlier networks had (so their specs, and exported STAGES, keep their text)."""
    required = [field.name for field in fields(Stage) if field.default is MISSING]
    assert {
        field.name: field.default for field in fields(Stage) if field.name not in required
    } == (OPTIONAL_KNOBS)
    # Networks of the nine tokens only: the landmarks before the papers' blocks, and others.
    earlier = [
        "stem16-" + "-".join(f"c{width}_d2_s2_{block}" for width in (32, 64, 128))
        for block in ("k1.3.5.pool_g1_pbefore_f1_a1_r0", "k3_gdw_pafter_f0_a0_r1")
    ]
    for arch in (*map(Arch.parse, earlier), LANDMARKS["normal"], LANDMARKS["mobilenet"]):
        specs = stage_specs(arch)
        assert [list(spec) for spec in specs] == [required] * len(arch.stages)
        assert specs == [{k: asdict(stage)[k] for k in required} for stage in arch.stages]
    xception_exit = Arch.parse(
        "stem8-c16_d1_s2post_k3_gdw_pafter_f0_a0_r1_m12_n2_v1_b0-c32_d1_s1_k3_g1_pnone_f0_a0_r0"
    )
    first, second = stage_specs(xception_exit)
    assert list(first) == [*required, "downsample", "inner", "steps", "preact", "mid_bn"]
    assert (first["downsample"], first["inner"], first["steps"]) == ("post", (12,), 2)
    assert (first["preact"], first["mid_bn"]) == (True, False)
    assert list(second) == required


@pytest.mark.parametrize("arch", ARCHS, ids=str)
def test_layers_chain_and_branches_fill_the_width(arch):
    for stage, blocks in zip(arch.stages, arch_plan(arch)):
        assert len(blocks) == stage.depth
        for index, block in enumerate(blocks):
            assert block.out_chs == stage.width
            assert block.stride == (stage.stride if index == 0 else 1)
            assert sum(branch.out_chs for branch in block.branches) == stage.width
            assert [branch.branch for branch in block.branches] == list(stage.branches)
            for branch in block.branches:
                layers = branch.layers
                assert layers[0].in_chs == block.in_chs and layers[-1].out_chs == branch.out_chs
                assert all(a.out_chs == b.in_chs for a, b in zip(layers, layers[1:]))
                # One layer takes the block's stride; a pool keeps its channels.
                pools = [pool for pool in (block.pre_pool, block.post_pool) if pool is not None]
                assert math.prod(layer.stride for layer in [*layers, *pools]) == block.stride
                assert all(layer.in_chs == layer.out_chs for layer in layers if not layer.bn)
                assert all(layer.in_chs % layer.groups == 0 for layer in layers)
        later_in = [block.in_chs for block in blocks[1:]]
        assert later_in == [stage.width] * (stage.depth - 1)


def planned_facts(layer) -> LayerFacts:
    pool = layer.kind in ("pool", "avg")
    return LayerFacts(
        layer.kind,
        layer.kernel,
        None if pool else layer.in_chs,
        None if pool else layer.out_chs,
        layer.stride,
        layer.groups,
        layer.bn,
        layer.relu,
        layer.pre_relu,
    )


@pytest.mark.parametrize("arch", ARCHS, ids=str)
def test_the_built_network_is_the_plan(arch):
    model = build_model(arch, 3, 10)
    stem = [layer_facts(model.stem[i : i + 3]) for i in range(0, len(model.stem), 3)]
    widths = [arch.stem] if arch.stem_lead is None else [arch.stem_lead, arch.stem]
    assert [(f.in_chs, f.out_chs, f.bn, f.relu) for f in stem] == [
        (cin, cout, True, True) for cin, cout in zip([3, *widths], widths)
    ]
    for built_stage, blocks in zip(model.stages, arch_plan(arch), strict=True):
        for built, block in zip(built_stage, blocks, strict=True):
            for pool in ("pre_pool", "post_pool"):
                planned = getattr(block, pool)
                if planned is None:
                    assert not hasattr(built, pool)
                else:
                    assert layer_facts(getattr(built, pool)) == planned_facts(planned)
            assert len(built.branches) == len(block.branches)
            for built_branch, branch in zip(built.branches, block.branches):
                assert branch_facts(built_branch) == [planned_facts(x) for x in branch.layers]
            if not block.residual:
                assert built.shortcut is None
            elif block.projection is None:
                assert isinstance(built.shortcut, nn.Identity)
            else:
                assert layer_facts(built.shortcut) == planned_facts(block.projection)
            assert isinstance(built.act, nn.ReLU if block.act else nn.Identity)
    assert model.head.in_features == arch.out_channels


# --- the diagram against the built modules (not against the plan) ---------------------------

DETAIL = re.compile(
    r"^(?P<pre>ReLU, then )?(?:(?P<cin>\d+) → )?(?P<cout>\d+) ch(?:, stride (?P<stride>\d+))?"
    r"(?: · (?!ReLU$|no BN$)(?P<groups>[^;·]+?)(?:; later blocks (?P<later>[^·]+?))?)?"
    r"(?P<relu> · ReLU)?(?P<nobn> · no BN)?$"
)


def segments_of(text: str, channels: int) -> int:
    """The groups a diagram text names: '1 segment', 'depthwise (16 segments)', '4 segments...'."""
    groups = int(re.match(r"(?:depthwise \()?(\d+) segments?", text).group(1))
    assert text.startswith("depthwise") == (groups == channels > 1), text
    return groups


@pytest.mark.parametrize("arch", ARCHS, ids=str)
def test_the_diagram_draws_the_built_network(arch):
    model = build_model(arch, 1, 10)
    views = arch_diagram(arch)
    assert len(views) == len(model.stages)
    for stage, view, built_stage in zip(arch.stages, views, model.stages):
        first, later = built_stage[0], built_stage[1] if len(built_stage) > 1 else None
        strides = [layer_facts(layer).stride for b in first.branches for layer in b]
        strides += [
            getattr(first, pool).stride
            for pool in ("pre_pool", "post_pool")
            if hasattr(first, pool)
        ]
        width = sum(out_channels(branch) for branch in first.branches)
        blocks = "block" if len(built_stage) == 1 else "blocks"
        assert view.summary.startswith(
            f"{len(built_stage)} {blocks} x {width} ch, stride {max(strides)}, "
        )
        assert view.merge == ("concatenate" if len(first.branches) > 1 else "")
        if first.shortcut is None:
            assert view.residual == ""
        elif isinstance(first.shortcut, nn.Identity):
            assert view.residual == "identity"
        else:
            assert view.residual == "1x1 projection (first block), identity after"
            assert later is None or isinstance(later.shortcut, nn.Identity)
        assert len(view.branches) == len(first.branches)
        for index, (drawn, built) in enumerate(zip(view.branches, first.branches)):
            kernel = stage.branches[index]
            assert drawn.name == (kernel if "pool" in kernel else f"{kernel}x{kernel}")
            assert drawn.channels == out_channels(built)
            later_layers = list(later.branches[index]) if later is not None else []
            check_ops(drawn.ops, list(built), later_layers)


def check_ops(ops, layers, later_layers) -> None:
    assert len(ops) == len(layers)
    for position, (op, layer) in enumerate(zip(ops, layers)):
        facts = layer_facts(layer)
        detail = DETAIL.match(op.detail)
        assert detail, op.detail
        assert op.kind == ("pool" if facts.kind == "avg" else facts.kind)
        assert bool(detail["nobn"]) == (facts.kind in ("pointwise", "spatial") and not facts.bn)
        assert int(detail["stride"] or 1) == facts.stride, op.detail
        assert bool(detail["relu"]) == facts.relu, op.detail
        assert bool(detail["pre"]) == facts.pre_relu, op.detail
        if facts.kind in ("pool", "avg"):
            assert op.kind == "pool"
            kind = "max" if facts.kind == "pool" else "average"
            assert op.label == f"{facts.kernel}x{facts.kernel} {kind} pool"
            assert int(detail["cout"]) == layer_facts(layers[position + 1]).in_chs
            continue
        assert (int(detail["cin"]), int(detail["cout"])) == (facts.in_chs, facts.out_chs)
        assert op.label == f"{facts.kernel}x{facts.kernel} conv"
        if facts.kind == "pointwise":
            assert detail["groups"] is None and math.isnan(op.decoupling)
            continue
        assert segments_of(detail["groups"], facts.in_chs) == facts.groups
        # A one-channel conv (a narrow reduce) has one segment and nothing to decouple.
        degree = math.log(facts.groups) / math.log(facts.in_chs) if facts.in_chs > 1 else 0.0
        assert op.decoupling == pytest.approx(degree)
        other = layer_facts(later_layers[position]) if later_layers else None
        if other is not None and (other.in_chs, other.out_chs) != (facts.in_chs, facts.out_chs):
            assert segments_of(detail["later"], other.in_chs) == other.groups
        else:
            assert detail["later"] is None, op.detail


def test_the_diagram_notes_where_later_blocks_are_split_differently():
    # 16 -> 48 channels allow 16 groups in the first block; 48 -> 48 allow all 48 later.
    arch = Arch.parse("stem16-c48_d2_s2_k3_gdw_pnone_f0_a0_r0")
    [view] = arch_diagram(arch)
    [op] = view.branches[0].ops
    assert op.detail == "16 → 48 ch, stride 2 · depthwise (16 segments); later blocks " + (
        "depthwise (48 segments)"
    )
    [[first, second]] = [list(stage) for stage in build_model(arch, 1, 10).stages]
    assert layer_facts(first.branches[0][0]).groups == 16
    assert layer_facts(second.branches[0][0]).groups == 48
