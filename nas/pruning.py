"""Multi-objective pruning: stop a trial whose accuracy is already clearly dominated.

Optuna's pruners need `Trial.report`, which multi-objective studies do not support. Our rule
works on the two objectives directly: at epoch e (before the last), a trial is stopped when at
least `min_dominators` finished trials of no greater cost had, at the same epoch e, an
accuracy higher by at least `margin`. Such a trial is very likely dominated at the end too, so
stopping it saves training without moving the Pareto front. Requiring several dominators and a
margin keeps one lucky cheap run from pruning everything behind it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class PeerCurve:
    """A finished trial as the rule sees it: its cost and its per-epoch validation accuracy."""

    macs: int
    curve: tuple[float, ...]


@dataclass(frozen=True)
class DominancePruner:
    """The rule, with its two knobs.

    Attributes:
        margin: accuracy gap (absolute, 0..1) a cheaper peer must lead by at the same epoch;
            larger than the seed-to-seed noise of an early epoch.
        min_dominators: how many cheaper peers must lead by that margin.
        min_epoch: never prune before this epoch (the first epochs of a one-cycle run are
            mostly warm-up and rank poorly).
    """

    margin: float = 0.02
    min_dominators: int = 2
    min_epoch: int = 1

    def should_prune(
        self,
        epoch: int,
        accuracy: float,
        macs: int,
        peers: Sequence[PeerCurve],
        total_epochs: int,
    ) -> bool:
        """Whether to stop a trial of cost `macs` at `accuracy` after `epoch` (counted from 1)."""
        if epoch < self.min_epoch or epoch >= total_epochs:
            return False
        dominators = 0
        for peer in peers:
            if peer.macs <= macs and len(peer.curve) >= epoch:
                if peer.curve[epoch - 1] >= accuracy + self.margin:
                    dominators += 1
                    if dominators >= self.min_dominators:
                        return True
        return False


NO_PRUNING = DominancePruner(min_dominators=10**9)
