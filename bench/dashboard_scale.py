"""How the dashboard scales: the time to build the main figure for a study of 5,000 trials.

The headline figure is the data step (FrozenTrials -> trials frame with Pareto membership) plus
the figure builder (the fronts scatter, WebGL at this size), median over repeats, which is what
a live update of the fronts page costs the server once the trials are read. Also measured: the
JSON the browser receives, the other pages' builders, parameter importances, the trials page
(its first render on the server: the data step of the table, its first page, the parallel
coordinates and the curves chart; then a sort + filter, and the CSV), and, on a real sqlite
file, the first read of all trials, a poll when nothing changed, and a poll after one new trial
(Optuna's cached storage re-reads only new and unfinished trials).

Trials are fake but follow the search's schema (bench/_fake_studies.py): no training.

    python bench/dashboard_scale.py                  # 5,000 trials -> bench/results/
    python bench/dashboard_scale.py --no-storage     # skip the sqlite part (writing takes ~2 min)
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import optuna  # noqa: E402
import plotly.io  # noqa: E402

from bench._fake_studies import add_complete_trials, make_trials, study_attrs, write_study  # noqa: E402
from bench._machine import RESULTS, bench_parser, invocation, machine, ran_on, write_results  # noqa: E402
from dashboard.data import (  # noqa: E402
    FrameCache,
    param_importances,
    trials_frame,
)
from dashboard.figures import fronts_figure, spectrum_figure  # noqa: E402
from dashboard.plot_data import fronts_data, progress_data, spectrum_data  # noqa: E402
from dashboard.search_figures import progress_figure  # noqa: E402
from dashboard.storage import StorageReader, StudyInfo  # noqa: E402
from dashboard.trials_data import study_facts, trials_table  # noqa: E402
from dashboard.trials_figures import curves_figure, parcoords_figure  # noqa: E402
from dashboard.trials_plot_data import curves_data, parcoords_data  # noqa: E402
from dashboard.trials_table import (  # noqa: E402
    PAGE_SIZE,
    filter_rows,
    page_rows,
    sort_rows,
    table_csv,
)

NAME = "scale"


def median_seconds(function, repeats: int, warmup: int = 1) -> tuple[float, object]:
    """Median wall time of `function()` over `repeats` runs after `warmup` untimed ones."""
    for _ in range(warmup):
        function()  # plotly builds its validators lazily on first use
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def in_memory(trials: list, repeats: int) -> dict:
    info = StudyInfo(
        NAME, ("maximize", "minimize", "minimize"), ("val_acc", "macs", "latency_ms"),
        study_attrs(latency=True),
    )  # fmt: skip
    data_s, frame = median_seconds(lambda: trials_frame(info, trials), repeats)
    figure_s, figure = median_seconds(lambda: fronts_figure(fronts_data(frame, "macs")), repeats)

    def main_figure():
        return fronts_figure(fronts_data(trials_frame(info, trials), "macs"))

    both_s, _ = median_seconds(main_figure, repeats)
    json_s, payload = median_seconds(lambda: plotly.io.to_json(figure, validate=False), repeats)

    def spectrum():
        return spectrum_figure(spectrum_data(frame, "decoupling"))

    def progress():
        return progress_figure(progress_data(frame))

    spectrum_s, _ = median_seconds(spectrum, repeats)
    progress_s, _ = median_seconds(progress, repeats)
    study = optuna.create_study(directions=list(info.directions))
    study.add_trials(trials)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        importance_s, result = median_seconds(lambda: param_importances(study, info), 1, 0)
    assert not result.message, result.message
    return {
        "trials_page": trials_page(info, trials, frame, repeats),
        "main_figure_s": round(both_s, 3),
        "data_step_s": round(data_s, 3),
        "fronts_figure_s": round(figure_s, 3),
        "figure_json_s": round(json_s, 3),
        "figure_json_mb": round(len(payload) / 1e6, 2),
        "trace_types": sorted({trace.type for trace in figure.data}),
        "points_drawn": int(sum(len(trace.x) for trace in figure.data if trace.x is not None)),
        "spectrum_page_s": round(spectrum_s, 3),
        "progress_page_s": round(progress_s, 3),
        "importances_s": round(importance_s, 3),
    }


def trials_page(info: StudyInfo, trials: list, frame, repeats: int) -> dict:
    """The trials page on the server: what its first render costs, and what a sort, a filter
    and the CSV cost once its data is built (the frame is the fronts' own, already built)."""

    def data_step():
        facts = study_facts(info, trials)
        return facts, trials_table(frame, [facts])

    data_s, (facts, table) = median_seconds(data_step, repeats)
    page_s, page = median_seconds(
        lambda: page_rows(sort_rows(filter_rows(table, "")[0], []), 0, PAGE_SIZE), repeats
    )
    parcoords_s, parcoords = median_seconds(
        lambda: parcoords_figure(parcoords_data([facts])), repeats
    )
    curves_s, curves = median_seconds(lambda: curves_figure(curves_data([facts])), repeats)
    query = "{state} icontains compl && {macs} s> 2M"
    sort_by = [{"column_id": "val_acc", "direction": "desc"}]

    def sorted_filtered():
        rows, error = filter_rows(table, query)
        assert not error, error
        return page_rows(sort_rows(rows, sort_by), 0, PAGE_SIZE)

    interact_s, _ = median_seconds(sorted_filtered, repeats)
    csv_s, text = median_seconds(lambda: table_csv(table.rows, table.columns), repeats)
    sizes = {
        "page_json_kb": round(len(plotly.io.json.to_json_plotly(page)) / 1e3, 1),
        "parcoords_json_mb": round(len(plotly.io.to_json(parcoords, validate=False)) / 1e6, 2),
        "curves_json_mb": round(len(plotly.io.to_json(curves, validate=False)) / 1e6, 2),
        "csv_mb": round(len(text) / 1e6, 2),
    }
    first = data_s + page_s + parcoords_s + curves_s
    return {
        "first_render_s": round(first, 3),
        "data_step_s": round(data_s, 3),
        "first_page_s": round(page_s, 4),
        "parcoords_s": round(parcoords_s, 3),
        "curves_s": round(curves_s, 3),
        "sort_filter_page_s": round(interact_s, 4),
        "csv_s": round(csv_s, 3),
        "columns": len(table.columns),
        **sizes,
    }


def on_sqlite(trials: list, repeats: int) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/studies.db"
        start = time.perf_counter()
        write_study(url, NAME, trials, latency=True)
        write_s = time.perf_counter() - start

        cache = FrameCache(StorageReader(url))
        first_s, _ = median_seconds(lambda: cache.frame([NAME]), 1, 0)
        poll_s, _ = median_seconds(lambda: cache.versions([NAME]), repeats)
        add_complete_trials(url, NAME, 1)
        new_s, frame = median_seconds(lambda: (cache.versions([NAME]), cache.frame([NAME])), 1, 0)
        assert len(frame[1]) == len(trials) + 1
        cache.reader.close()
    return {
        "write_study_s": round(write_s, 1),
        "first_read_s": round(first_s, 3),
        "poll_unchanged_s": round(poll_s, 4),
        "poll_after_new_trial_s": round(new_s, 3),
    }


def markdown(result: dict) -> list[str]:
    memory, disk = result["in_memory"], result.get("sqlite")
    lines = [
        "# Dashboard at scale",
        "",
        f"{ran_on(result['command'], result['machine'])}.",
        "",
        f"{result['trials']} trials in one study (fake, schema of the search), 3 objectives.",
        "",
        "| step | seconds |",
        "|---|---:|",
        f"| **main figure: data step + fronts figure** | **{memory['main_figure_s']:.3f}** |",
        f"| data step (trials frame, Pareto membership) | {memory['data_step_s']:.3f} |",
        f"| fronts figure ({'/'.join(memory['trace_types'])}) | {memory['fronts_figure_s']:.3f} |",
        f"| figure to JSON ({memory['figure_json_mb']} MB sent to the browser) "
        f"| {memory['figure_json_s']:.3f} |",
        f"| spectrum page figure | {memory['spectrum_page_s']:.3f} |",
        f"| progress page figure (hypervolume per trial) | {memory['progress_page_s']:.3f} |",
        f"| parameter importances, 3 objectives | {memory['importances_s']:.3f} |",
    ]
    page = memory["trials_page"]
    lines += [
        f"| **trials page, first render on the server** | **{page['first_render_s']:.3f}** |",
        f"| trials page: table data step ({page['columns']} columns) "
        f"| {page['data_step_s']:.3f} |",
        f"| trials page: first page of {PAGE_SIZE} rows ({page['page_json_kb']} kB) "
        f"| {page['first_page_s']:.4f} |",
        f"| trials page: parallel coordinates ({page['parcoords_json_mb']} MB) "
        f"| {page['parcoords_s']:.3f} |",
        f"| trials page: all curves ({page['curves_json_mb']} MB) | {page['curves_s']:.3f} |",
        f"| trials page: filter + sort + page | {page['sort_filter_page_s']:.4f} |",
        f"| trials page: CSV of every trial ({page['csv_mb']} MB) | {page['csv_s']:.3f} |",
    ]
    if disk:
        lines += [
            f"| sqlite: first read of all trials | {disk['first_read_s']:.3f} |",
            f"| sqlite: poll, nothing changed | {disk['poll_unchanged_s']:.4f} |",
            f"| sqlite: poll + rebuild after one new trial "
            f"| {disk['poll_after_new_trial_s']:.3f} |",
        ]
    lines += [
        "",
        "Medians over repeats after a warm-up run (importances and sqlite reads: one cold run). "
        "The fronts use WebGL "
        "(Scattergl) from 1,000 points per trace.",
    ]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = bench_parser(__doc__)
    parser.add_argument("--trials", type=int, default=5000, help="trials in the study")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per step")
    parser.add_argument("--no-storage", action="store_true", help="skip the sqlite part")
    parser.add_argument("--out", default=str(RESULTS), help="folder for the results")
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    trials = make_trials(args.trials - 7, seed=0, latency=True)  # + the 7 landmarks
    result = {
        "command": invocation(__file__, argv),
        "machine": machine(),
        "trials": len(trials),
        "in_memory": in_memory(trials, args.repeats),
    }
    if not args.no_storage:
        result["sqlite"] = on_sqlite(trials, args.repeats)
    write_results("dashboard_scale", result, markdown(result), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
