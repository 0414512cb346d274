"""Multi-objective pruning: stop a trial whose accuracy is already dominated.

Optuna's pruners need `Trial.report`, which multi-objective studies do not support. Both rules
here work on the two objectives directly, at an epoch e before the last, comparing the trial's
accuracy at e and its MACs with other trials' accuracy at the same epoch:

- `DominancePruner` (absolute): stop when at least `min_dominators` finished trials of no
  greater cost were more accurate at e by at least `margin`. Such a trial is very likely
  dominated at the end too, so stopping it saves training without moving the Pareto front.
- `RungPruner` (relative; asynchronous multi-objective successive halving, after MO-ASHA):
  epochs min_epoch * reduction^k are rungs; at a rung, the trials that reached it (running
  ones too, so workers on several machines share the rung through the storage) are sorted
  into non-dominated fronts, and a trial continues only if fewer than 1 / reduction of them
  rank in better fronts. Most trials then stop at the first rung, and the budget goes to the
  promising ones. Early trials meet few peers and continue, as in ASHA.

Both count accuracy differences below their margin as ties, as below that they are seed noise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from nas.pareto import front_ranks


@dataclass(frozen=True)
class PeerCurve:
    """A finished trial as the rule sees it: its cost and its per-epoch validation accuracy."""

    macs: int
    curve: tuple[float, ...]


def _should_prune(self, *decision, **named) -> bool:
    """Whether the pruner stops the trial: `stop_reason` of the same arguments gives a reason."""
    return self.stop_reason(*decision, **named) is not None


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
    # Compares with the trials finished when the trial started (running ones are not read).
    reads_running: bool = False

    def decides_at(self, epoch: int, total_epochs: int) -> bool:
        """Whether `should_prune` can stop a trial after `epoch`."""
        return self.min_epoch <= epoch < total_epochs

    def stop_reason(
        self, epoch: int, accuracy: float, macs: int, peers: Sequence[PeerCurve], total_epochs: int
    ) -> str | None:
        """Why to stop a trial of cost `macs` at `accuracy` after `epoch` (counted from 1), in
        words a trial page shows; None to let it continue."""
        if not self.decides_at(epoch, total_epochs):
            return None
        dominators = 0
        for peer in peers:
            if peer.macs <= macs and len(peer.curve) >= epoch:
                if peer.curve[epoch - 1] >= accuracy + self.margin:
                    dominators += 1
                    if dominators >= self.min_dominators:
                        return (
                            f"dominance: at least {self.min_dominators} finished trials of no "
                            f"more MACs were {self.margin:g} or more ahead after epoch {epoch}"
                        )
        return None

    should_prune = _should_prune


@dataclass(frozen=True)
class RungPruner:
    """Asynchronous multi-objective successive halving (see the module docstring).

    Attributes:
        reduction: 1 / reduction of a rung's trials continue (ASHA's eta); rungs are the
            epochs min_epoch * reduction^k before the last.
        margin: accuracy gap (absolute) under which two trials at a rung tie.
        min_epoch: the first rung.
    """

    reduction: int = 3
    margin: float = 0.01
    min_epoch: int = 1
    # Compares with every trial that reached the rung, running ones included.
    reads_running: bool = True

    def rungs(self, total_epochs: int) -> tuple[int, ...]:
        """The epochs where trials of `total_epochs` epochs are ranked."""
        rungs, epoch = [], self.min_epoch
        while epoch < total_epochs:
            rungs.append(epoch)
            epoch *= self.reduction
        return tuple(rungs)

    def decides_at(self, epoch: int, total_epochs: int) -> bool:
        return epoch in self.rungs(total_epochs)

    def stop_reason(
        self, epoch: int, accuracy: float, macs: int, peers: Sequence[PeerCurve], total_epochs: int
    ) -> str | None:
        """Why a trial of cost `macs` at `accuracy` after `epoch` stops at this rung, in words a
        trial page shows; None to let it continue."""
        ranking = self.ranking(epoch, accuracy, macs, peers, total_epochs)
        if ranking is None or ranking[0] < ranking[1]:
            return None
        ahead, continuing = ranking
        reached = 1 + sum(len(peer.curve) >= epoch for peer in peers)
        return (
            f"rungs: after epoch {epoch}, {ahead} of the {reached} trials there ranked in "
            f"better fronts, and only {continuing} may continue"
        )

    should_prune = _should_prune

    def ranking(
        self,
        epoch: int,
        accuracy: float,
        macs: int,
        peers: Sequence[PeerCurve],
        total_epochs: int,
    ) -> tuple[int, int] | None:
        """(how many of the rung's trials rank in better fronts, how many may continue), or
        None where `epoch` is no rung."""
        if not self.decides_at(epoch, total_epochs):
            return None
        points = [(accuracy, float(macs))]
        points += [(p.curve[epoch - 1], float(p.macs)) for p in peers if len(p.curve) >= epoch]
        ranks = front_ranks(points, self.margin)
        ahead = sum(rank < ranks[0] for rank in ranks[1:])
        return ahead, math.ceil(len(points) / self.reduction)


PRUNERS = ("rungs", "dominance", "none")
NO_PRUNING = DominancePruner(min_dominators=10**9)


def make_pruner(name: str) -> DominancePruner | RungPruner:
    """The pruner --pruner names: "rungs" (the default), "dominance" or "none"."""
    if name == "rungs":
        return RungPruner()
    if name == "dominance":
        return DominancePruner()
    if name == "none":
        return NO_PRUNING
    raise ValueError(f"unknown pruner {name!r}: choose from {', '.join(PRUNERS)}")
