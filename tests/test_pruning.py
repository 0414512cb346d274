from __future__ import annotations

from nas.pruning import NO_PRUNING, DominancePruner, PeerCurve


def test_pruner_needs_several_cheaper_peers_ahead_by_the_margin():
    pruner = DominancePruner(margin=0.02, min_dominators=2)
    peers = [PeerCurve(100, (0.80, 0.85, 0.90)), PeerCurve(90, (0.81, 0.86, 0.91))]
    assert pruner.should_prune(1, 0.70, macs=150, peers=peers, total_epochs=3)
    # Not clearly worse: within the margin.
    assert not pruner.should_prune(1, 0.79, macs=150, peers=peers, total_epochs=3)
    # The peers cost more: they do not dominate.
    assert not pruner.should_prune(1, 0.70, macs=80, peers=peers, total_epochs=3)
    # One dominator is not enough.
    assert not pruner.should_prune(1, 0.70, macs=95, peers=peers, total_epochs=3)
    # Never at the last epoch (the trial is done anyway).
    assert not pruner.should_prune(3, 0.10, macs=150, peers=peers, total_epochs=3)


def test_pruner_compares_the_same_epoch():
    pruner = DominancePruner(margin=0.02, min_dominators=1)
    peers = [PeerCurve(10, (0.50, 0.90))]
    assert not pruner.should_prune(1, 0.60, macs=20, peers=peers, total_epochs=3)
    assert pruner.should_prune(2, 0.60, macs=20, peers=peers, total_epochs=3)
    assert not NO_PRUNING.should_prune(2, 0.0, macs=20, peers=peers * 5, total_epochs=3)
