"""The tool's headline: does the searched front beat the papers' networks, trained to the end?

Three stages, each resumable from the study in --work (rerun the same command after a stop):
1. the default search, `python -m nas.search --trials N` (a user's command);
2. `python -m nas.confirm --seeds K --top T --landmarks-within W --final --epochs E`: the knee
   and the front points either side of it, and every landmark within W times the knee's MACs,
   retrained with K more seeds at the proxy budget, then trained with the final recipe on the
   whole training split at the same K seeds and scored on the test split;
3. the table: per network the proxy mean with its 95% t interval, the final test accuracy
   mean ± sd, and each searched network's final-test gain over the best landmark at equal or
   lower MACs with its Welch interval; the issue's goal checked; the CPU time of each stage.

    python bench/front_vs_landmarks.py [--trials 200] [--seeds 3] [--work DIR]
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import optuna  # noqa: E402

from bench._machine import RESULTS, bench_parser, invocation, machine, ran_on, write_results  # noqa: E402
from nas.confirm import best_cheaper_landmark, confirmed, seeds_of, targets  # noqa: E402
from nas.intervals import difference_of_values  # noqa: E402
from nas.record import confirmation_runs  # noqa: E402

SPACE = "inception_to_xception"
GOAL_MMACS, GOAL_TEST_ACC = 5.0, 0.940  # a searched network this small, this accurate


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--top", type=int, default=5, help="front points: the knee and 2 each side"
    )
    parser.add_argument("--within", type=float, default=2.0, help="landmarks within this ratio")
    parser.add_argument("--final-epochs", type=int, default=10)
    parser.add_argument("--dataset", default="fashion_mnist")
    parser.add_argument("--work", default="/tmp/front_vs_landmarks", help="the study's folder")
    parser.add_argument("--name", default="front_vs_landmarks", help="results file name")
    parser.add_argument("--out", default=str(RESULTS), help="folder for the results")
    args = parser.parse_args()

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    storage = f"sqlite:///{work / 'studies.db'}"
    study_name = f"{SPACE}-{args.dataset}"
    search = ["python", "-m", "nas.search", "--space", SPACE, "--trials", str(args.trials)]
    search += ["--dataset", args.dataset, "--storage", storage]
    confirm = ["python", "-m", "nas.confirm", "--storage", storage, "--study", study_name]
    confirm += ["--seeds", str(args.seeds), "--top", str(args.top)]
    confirm += ["--landmarks-within", str(args.within), "--final"]
    confirm += ["--epochs", str(args.final_epochs)]
    walls = {}
    for stage, command in (("search", search), ("confirm_and_final", confirm)):
        print(f"{stage}: {shlex.join(command)}", file=sys.stderr, flush=True)
        start = time.perf_counter()
        subprocess.run([sys.executable, *command[1:]], check=True)
        walls[stage] = round(time.perf_counter() - start, 1)  # this invocation's share only
    study = optuna.load_study(study_name=study_name, storage=storage)
    result = summarize(study, args, search, confirm, walls)
    write_results(args.name, result, markdown(result), out=args.out)


def summarize(study: optuna.Study, args, search, confirm, walls) -> dict:
    chosen = targets(study, args.top, args.within)
    seeds = seeds_of(study, args.seeds)
    proxy = {row.target.arch: row for row in confirmed(study.user_attrs, chosen, seeds)}
    final = {
        row.target.arch: row
        for row in confirmed(study.user_attrs, chosen, seeds, args.final_epochs)
    }
    networks = []
    for target in sorted(chosen, key=lambda t: t.macs):
        p, f = proxy[target.arch], final[target.arch]
        networks.append(
            {
                "label": target.label,
                "trial": target.trial,
                "mmacs": round(target.macs / 1e6, 3),
                "search_val_acc": round(target.search_acc, 4),
                "proxy_mean": _rounded(p.interval and p.interval.mean),
                "proxy_half_width": _rounded(p.interval and p.interval.half_width),
                "proxy_seeds": len(p.accuracies),
                "final_mean": _rounded(f.interval and f.interval.mean),
                "final_sd": _rounded(f.spread),
                "final_seeds": len(f.accuracies),
                "final_accuracies": [round(a, 4) for a in f.accuracies],
                "arch": target.arch,
            }
        )
    gains = []
    rows = list(final.values())
    landmarks = [row for row in rows if row.target.is_landmark and row.accuracies]
    for target in chosen:
        row = final[target.arch]
        if target.is_landmark or not row.accuracies:
            continue
        dearer = [lm for lm in landmarks if lm.target.macs >= target.macs]
        best = best_cheaper_landmark(rows, row)
        gain = difference_of_values(row.accuracies, best.accuracies) if best else None
        beats_dearer = [
            lm.target.label
            for lm in dearer
            if (d := difference_of_values(row.accuracies, lm.accuracies)).distinguishable
            and d.delta > 0
        ]
        gains.append(
            {
                "label": target.label,
                "trial": target.trial,
                "mmacs": round(target.macs / 1e6, 3),
                "best_cheaper_landmark": best.target.label if best else None,
                "gain": None if gain is None else _gain(gain),
                "dearer_landmarks": [lm.target.label for lm in dearer],
                "ahead_of_dearer": beats_dearer,
                "meets_goal": target.macs <= GOAL_MMACS * 1e6
                and row.interval.mean >= GOAL_TEST_ACC
                and len(beats_dearer) == len(dearer),
            }
        )
    runs = confirmation_runs(study.user_attrs).values()
    core_seconds = {
        "confirmation": sum(r.train_seconds or 0 for r in runs if r.epochs is None),
        "final": sum(r.train_seconds or 0 for r in runs if r.epochs == args.final_epochs),
    }
    return {
        "command": shlex.join(search) + " && " + shlex.join(confirm),
        "benchmark": invocation(__file__),
        "machine": machine(),
        "trials": len(study.trials),
        "budget": study.user_attrs.get("budget"),
        "seeds": seeds,
        "final_epochs": args.final_epochs,
        "networks": networks,
        "searched_against_landmarks": gains,
        "training_seconds": {k: round(v, 1) for k, v in core_seconds.items()},
        "wall_s_this_invocation": walls,
    }


def _rounded(value) -> float | None:
    return None if value is None else round(value, 4)


def _gain(diff) -> dict:
    return {
        "points": round(diff.delta * 100, 2),
        "low": round(diff.low * 100, 2),
        "high": round(diff.high * 100, 2),
        "p": round(diff.p, 3),
        "distinguishable": diff.distinguishable,
    }


def markdown(r: dict) -> list[str]:
    seeds = ", ".join(map(str, r["seeds"]))
    lines = [
        "# The searched front against the landmarks, trained to the end",
        "",
        f"{ran_on(r['command'], r['machine'], via=r['benchmark'])}. {r['trials']} trials at "
        f"budget {r['budget']}; confirmation and final training ({r['final_epochs']} epochs on "
        f"the whole training split, test accuracy) at seeds {seeds}.",
        "",
        "| network | trial | MMACs | search val acc | proxy mean ± 95% t | final test mean ± sd |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for n in r["networks"]:
        proxy = (
            "no run"
            if n["proxy_mean"] is None
            else (f"{n['proxy_mean']:.2%} ± {n['proxy_half_width']:.2%} ({n['proxy_seeds']})")
        )
        final = (
            "no run"
            if n["final_mean"] is None
            else (f"{n['final_mean']:.2%} ± {n['final_sd']:.2%} ({n['final_seeds']})")
        )
        lines.append(
            f"| {n['label']} | {n['trial']} | {n['mmacs']:.2f} | {n['search_val_acc']:.2%} | "
            f"{proxy} | {final} |"
        )
    lines += ["", "## Each searched network against the landmarks (final test accuracy)", ""]
    for g in r["searched_against_landmarks"]:
        name = f"trial {g['trial']} ({g['label']}, {g['mmacs']:.2f} MMACs)"
        if g["gain"] is None:
            lines.append(f"- {name}: no landmark at equal or lower MACs was trained.")
        else:
            d = g["gain"]
            verdict = "distinguishable" if d["distinguishable"] else "not distinguishable"
            lines.append(
                f"- {name} against {g['best_cheaper_landmark']}, the best landmark at equal or "
                f"lower MACs: {d['points']:+.2f} points (95% Welch interval {d['low']:+.2f} to "
                f"{d['high']:+.2f}, p {d['p']}): {verdict} at {len(r['seeds'])} seeds."
            )
        ahead = ", ".join(g["ahead_of_dearer"]) or "none"
        lines.append(
            f"  Of the {len(g['dearer_landmarks'])} landmarks of equal or more MACs, ahead "
            f"(interval excluding zero) of: {ahead}. Goal (at most {GOAL_MMACS:g} MMACs, "
            f"{GOAL_TEST_ACC:.1%} test, ahead of all of them): "
            f"{'met' if g['meets_goal'] else 'not met'}."
        )
    t = r["training_seconds"]
    lines += [
        "",
        f"Training time, summed over runs (with `--workers auto` on a CPU each run has one "
        f"core): confirmation "
        f"{t['confirmation'] / 3600:.2f} h, final training {t['final'] / 3600:.2f} h.",
    ]
    return lines


if __name__ == "__main__":
    main()
