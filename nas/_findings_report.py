"""Rendering the findings tables as Markdown (pure: data in, text out)."""

from __future__ import annotations

from nas.fidelity import kendall_tau, spearman_rho
from nas.intervals import LEVEL, difference, verdict


def _acc(row: dict) -> str:
    if row["acc_mean"] is None:
        return "failed"
    return f"{row['acc_mean']:.2%} ± {row['acc_std']:.2%}"


def _table(rows: list[dict], with_acc: bool = True) -> list[str]:
    head = "| design | MACs (M) | params | latency b1 (ms) | latency b64 (ms) |"
    rule = "|---|---:|---:|---:|---:|"
    if with_acc:
        head += " val acc (mean ± sd) |"
        rule += "---:|"
    lines = [head, rule]
    for row in rows:
        line = (
            f"| {row['label']} | {row['macs'] / 1e6:.3f} | {row['params']:,} | "
            f"{row['latency_ms_b1']:.2f} | {row['latency_ms_b64']:.2f} |"
        )
        if with_acc:
            line += f" {_acc(row)} |"
        lines.append(line)
    return lines


def _ranked(rows: list[dict]) -> list[dict]:
    """The rows that trained, most accurate first."""
    return sorted((r for r in rows if r["acc_mean"] is not None), key=lambda r: -r["acc_mean"])


def _compared(rows: list[dict], pairs: list[tuple[str, str]]) -> list[str]:
    """One line per pair of labels (first against second): the lead, its interval, and whether
    the seeds tell the two apart (nas.intervals)."""
    by_label = {row["label"]: row for row in rows}
    lines = []
    for a, b in pairs:
        first, second = by_label[a], by_label[b]
        if first["acc_mean"] is None or second["acc_mean"] is None:
            failed = a if first["acc_mean"] is None else b
            lines.append(f"- {a} against {b}: {failed} failed, no comparison")
            continue
        diff = difference(
            first["acc_mean"], first["acc_std"], first["seeds"],
            second["acc_mean"], second["acc_std"], second["seeds"],
        )  # fmt: skip
        lines.append(f"- {verdict(a, b, diff)}.")
    return lines


def _comparisons(rows: list[dict], pairs: list[tuple[str, str]]) -> list[str]:
    """The section's comparisons: the most accurate design against the next, then `pairs`."""
    ranked = _ranked(rows)
    if len(ranked) >= 2:
        first = (ranked[0]["label"], ranked[1]["label"])
        pairs = [first, *(pair for pair in pairs if set(pair) != set(first))]
    if not pairs:
        return []
    return ["", *_compared(rows, pairs)]


def _spectrum(rows: list[dict]) -> list[str]:
    return [
        "## 1. The spectrum: segments from normal convolution to depthwise",
        "",
        "The Xception block (spatial conv, then 1x1, residual) with everything fixed except the "
        "number of segments of the spatial conv: the points between normal conv and Xception "
        "that the paper left 'for future investigation'.",
        "",
        *_table(rows),
        # The most accurate point against the next, and the spectrum's two ends.
        *_comparisons(rows, [(rows[0]["label"], rows[-1]["label"])]),
    ]


def _factorization(rows: list[dict]) -> list[str]:
    factor = {row["label"]: row for row in rows}
    five, three = factor["5x5 conv"], factor["two stacked 3x3"]
    return [
        "## 2. Factorization: 5x5 against two stacked 3x3",
        "",
        *_table(rows),
        "",
        f"Whole-network MAC ratio of the factorized net: {three['macs'] / five['macs']:.3f}. "
        "Two stacked 3x3 cost 18/25 = 0.72 of a 5x5 only in a block that keeps its width "
        "(C_in = C_out). In a block that widens, the first 3x3 maps C_in -> C_out and the "
        "second C_out -> C_out: 9 C_in C_out + 9 C_out^2 against 25 C_in C_out, so at "
        "C_out = 2 C_in 54/50 = 27/25 = 1.08, more than the 5x5. Every stage here widens 2x in "
        "its first block and keeps its width in the second, so the stages cost "
        "(54 + 72) / (50 + 100) = 0.84; the stem and head, the same in both nets (0.46% of "
        "the MACs on 28 x 28 images), move the whole slightly off that. Both block ratios are "
        "tested in tests/test_cost.py.",
        *_comparisons(
            rows,
            [
                ("5x5 conv", "two stacked 3x3"),
                ("inception_v1 (5x5 branch)", "inception_v1, 5x5 as two 3x3"),
            ],
        ),
        "",
        "inception_v3 differs from inception_v1 in more than the factorization (branch widths, "
        "an average pool in the pool branch, strided branches instead of a pool before the "
        "module: [landmarks.md](landmarks.md)), so its row is not a test of the "
        "factorization alone.",
    ]


def _activation(rows: list[dict]) -> list[str]:
    return [
        "## 3. An activation between the spatial and the pointwise step",
        "",
        "Xception reports that no activation between depthwise and pointwise is better; "
        "Inception-v3 found ReLU better in its factorization.",
        "",
        *_table(rows),
        # In each order of the two steps: without the activation against with it.
        *_comparisons(
            rows, [(rows[0]["label"], rows[1]["label"]), (rows[3]["label"], rows[2]["label"])]
        ),
    ]


def _matched(rows: list[dict]) -> list[str]:
    target = next(r["params"] for r in rows if r["label"] == "inception_v3")
    # Widths move in steps of 4, so a landmark lands near the target, not on it.
    furthest = max(abs(r["params"] - target) / target for r in rows)
    return [
        f"## 4. Landmarks at matched parameter count (~{target:,})",
        "",
        "Each landmark's widths scaled so its parameters match inception_v3's (the Xception "
        "paper compares Inception V3 and Xception at about 23M parameters: 78.2% vs 79.0% "
        f"ImageNet top-1). Widths move in steps of 4, so the counts land within "
        f"{furthest:.1%} of it.",
        "",
        *_table(rows),
        *_comparisons(rows, [("xception", "inception_v3")]),
    ]


def _speed(rows: list[dict]) -> list[str]:
    macs = [float(r["macs"]) for r in rows]
    correlations = []
    for batch in ("1", "64"):
        latency = [r[f"latency_ms_b{batch}"] for r in rows]
        tau, rho = kendall_tau(macs, latency), spearman_rho(macs, latency)
        correlations.append(
            f"- batch {batch}: Kendall tau {tau:.2f}, Spearman rho {rho:.2f} between MACs and "
            "latency"
        )
    return [
        "## 5. FLOPs versus speed",
        "",
        "ShuffleNet V2 showed designs of equal FLOPs running several times apart. Our "
        "landmarks' MACs against measured latency:",
        "",
        *_table(rows, with_acc=False),
        "",
        *correlations,
    ]


SECTIONS = {
    "spectrum": _spectrum,
    "factorization": _factorization,
    "activation": _activation,
    "matched": _matched,
    "speed": _speed,
}


def render(tables: dict[str, list[dict]], context: dict) -> str:
    """The report: a header saying how it was made, then one section per experiment run."""
    machine = context["machine"]
    lines = [
        "# Findings: the Inception and Xception claims on our data",
        "",
        f"Dataset **{context['dataset']}**, budget **{context['budget']}** per run "
        f"(batch {context['batch_size']}), "
        f"**{context['seeds']} seeds** per design, device {context['device']} "
        f"({machine.get('gpu', machine['cpu'])}), {machine['date']}. Generated by "
        f"`{context['command']}`. Accuracy is validation accuracy (mean ± sample standard "
        "deviation over seeds). Each comparison gives the difference of two designs' means in "
        f"points, its {LEVEL:.0%} Welch interval and p value, and says 'not distinguishable' "
        "where the interval includes zero; MACs are multiply-accumulates (FLOPs = 2 x MACs); "
        "latency is the median forward time of batch 1 and batch 64.",
    ]
    for name, section in SECTIONS.items():
        if name in tables:
            lines += ["", *section(tables[name])]
    return "\n".join(lines) + "\n"
