"""bench/gpu.sh, rehearsed on the CPU: every stage runs, and a failing stage fails the script.

The GPU machine is lent only now and then, for minutes; the script must work the first time,
so CI runs the same script with --device cpu and the smallest budgets.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# What the device tool brings back from $OUT: at most 8 files.
DEVICE_FILE_LIMIT = 8


def run_script(tmp_path: Path, *options: str, env: dict | None = None, timeout: int = 600):
    out = tmp_path / "out"
    environment = {
        **os.environ,
        "OUT": str(out),
        "PACK": str(tmp_path / "no-pack"),
        "PYTHON": sys.executable,
        "TMPDIR": str(tmp_path),
        **(env or {}),
    }
    if "NAS_FAULT_AT" not in (env or {}):
        environment.pop("NAS_FAULT_AT", None)
    result = subprocess.run(
        ["bash", str(ROOT / "bench" / "gpu.sh"), *options],
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return result, out


def stage_states(report: str) -> dict[str, str]:
    """{stage: state} from the stage table of gpu.md."""
    states = {}
    for line in report.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if len(cells) == 3 and cells[2].isdigit():
            states[cells[0]] = cells[1]
    return states


@pytest.mark.slow
def test_cpu_rehearsal_runs_every_stage_and_reports(tmp_path):
    # --counts and --search-seconds reach their stages (--quick keeps two counts, at most 20 s).
    options = ("--device", "cpu", "--quick", "--counts", "2,1", "--search-seconds", "15")
    result, out = run_script(tmp_path, *options)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    report = (out / "gpu.md").read_text()
    assert stage_states(report) == dict.fromkeys(
        ("env", "throughput", "autotune", "concurrency", "search"), "ok"
    )
    names = sorted(path.name for path in out.iterdir())
    assert names == [
        "autotune_cpu.json", "concurrency_cpu.json", "env.json", "gpu.log", "gpu.md",
        "search_cpu.json", "throughput_cpu.json",
    ]  # fmt: skip
    assert len(names) <= DEVICE_FILE_LIMIT

    throughput = json.loads((out / "throughput_cpu.json").read_text())
    for row in throughput["landmarks"].values():
        for variant in ("ours_bf16", "ours_bf16_nchw", "ours_fp32", "ours_fp32_nchw", "plain"):
            assert row[f"{variant}_img_s"] > 0
    assert set(throughput["peak_matmul_macs_per_s"]) == {"bf16", "fp32"}
    concurrency = json.loads((out / "concurrency_cpu.json").read_text())
    assert [row["processes"] for row in concurrency["concurrency"].values()] == [2, 1]
    search = json.loads((out / "search_cpu.json").read_text())
    assert search["seconds"] == 15
    assert search["result"]["finished"] >= 2
    assert search["workers_from"].startswith("best of")  # taken from the concurrency stage
    assert "200 trials: about" in report
    # The log holds every stage's output, the search's own summary among it.
    assert "browse:  python -m dashboard" in (out / "gpu.log").read_text()


def test_missing_package_stops_the_script_at_once(tmp_path):
    # The GPU image has no ptflops unless the pack's wheels are installed: reproduced here by
    # a ptflops that cannot be imported, first on the path.
    shadow = tmp_path / "shadow" / "ptflops"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('No module named ptflops')\n")
    start = time.monotonic()
    result, out = run_script(
        tmp_path, "--device", "cpu", "--quick", env={"PYTHONPATH": str(shadow.parent)}
    )
    assert result.returncode == 1
    assert time.monotonic() - start < 60  # no later stage ran
    assert stage_states((out / "gpu.md").read_text()) == {"env": "failed (exit 1)"}
    log = (out / "gpu.log").read_text()
    assert "cannot import ptflops" in log and "gpu_pack.sh" in log
    assert not list(out.glob("throughput_*.json"))


def test_a_failing_stage_fails_the_script_and_the_report_says_which(tmp_path):
    # Every training call raises inside the throughput stage (nas._faults).
    result, out = run_script(
        tmp_path,
        "--device", "cpu", "--quick", "--only", "throughput",
        env={"NAS_FAULT_AT": "trial:started:FAIL"},
    )  # fmt: skip
    assert result.returncode == 1
    states = stage_states((out / "gpu.md").read_text())
    assert states == {"env": "ok", "throughput": "failed (exit 1)"}
    assert "injected fault at trial:started" in (out / "gpu.log").read_text()


def _write_wheel(folder: Path, name: str, version: str, module_source: str) -> Path:
    """A minimal pure-Python wheel holding one package `name` (what pip install reads)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}-{version}-py3-none-any.whl"
    info = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": module_source,
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    files[f"{info}/RECORD"] = "".join(f"{file},,\n" for file in [*files, f"{info}/RECORD"])
    with zipfile.ZipFile(path, "w") as archive:
        for file, text in files.items():
            archive.writestr(file, text)
    return path


def test_pack_wheels_install_offline_and_come_first(tmp_path):
    # A pack whose ptflops is a stand-in of another version: the environment stage must import
    # it, not the ptflops installed here, and the installed one must stay as it was.
    pack = tmp_path / "pack"
    stand_in = "def get_model_complexity_info(*args, **kwargs):\n    raise NotImplementedError\n"
    _write_wheel(pack / "wheels", "ptflops", "0.0.1", stand_in)
    result, out = run_script(tmp_path, "--device", "cpu", "--only", "", env={"PACK": str(pack)})
    assert result.returncode == 0, result.stdout[-2000:]
    env = json.loads((out / "env.json").read_text())
    assert env["packages"]["ptflops"] == "0.0.1"
    assert importlib.metadata.version("ptflops") != "0.0.1"


@pytest.mark.parametrize(
    "options",
    [
        ("--device", "tpu"),
        ("--only", "warp"),
        ("--bogus",),
        ("--device",),
        ("--counts", "1,x"),
        ("--counts", "0,2"),
        ("--search-seconds", "0"),
        ("--search-seconds", "ten"),
    ],
)
def test_bad_options_are_refused_with_exit_2(tmp_path, options):
    result, out = run_script(tmp_path, *options)
    assert result.returncode == 2
    assert result.stderr.startswith("error:") or result.stderr.startswith("usage:")
    assert not out.exists()


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if text.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            pass  # ended meanwhile
    return found


def test_search_stage_cut_by_its_time_limit_leaves_no_search_running(tmp_path):
    # The search runs in a session of its own; gpu.sh's `timeout` sends SIGTERM to the stage
    # alone, which must take the search and its workers down with it.
    stage = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "gpu_search.py"), "--device", "cpu", "--quick",
         "--workers", "2", "--out", str(tmp_path / "out")],
        env={**os.environ, "TMPDIR": str(tmp_path)},
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(_processes_mentioning(str(tmp_path))) < 3:
        time.sleep(0.5)  # the stage, the search and at least one worker
    assert len(_processes_mentioning(str(tmp_path))) >= 3
    stage.terminate()
    assert stage.wait(timeout=30) == 143
    time.sleep(1)
    assert _processes_mentioning(str(tmp_path)) == []


@pytest.mark.parametrize("finished, measured", [(200, True), (150, False)])
def test_the_search_report_measures_200_trials_when_it_got_there(tmp_path, finished, measured):
    import datetime

    import optuna

    from bench.gpu_search import read_back, report_lines

    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    study = optuna.create_study(study_name="gpu", storage=storage, directions=["maximize"] * 2)
    launched = datetime.datetime(2026, 12, 4, 18, 0, tzinfo=datetime.timezone.utc)
    for i in range(finished):  # one every 3 s from 10 s on: 200 at 607 s
        trial = optuna.trial.create_trial(values=[0.9, 1.0], user_attrs={"train_seconds": 2.0})
        trial.datetime_start = launched
        trial.datetime_complete = launched + datetime.timedelta(seconds=10 + 3 * i)
        study.add_trial(trial)
    result = read_back(storage, "gpu", launched.timestamp())
    assert result["finished"] == finished
    assert result["trials_per_minute"] == pytest.approx(20.0)
    assert result["estimated_200_trials_s"] == pytest.approx(607.0)
    # The record as the H200's run wrote it, with this result.
    committed = json.loads((ROOT / "bench" / "results" / "gpu" / "search_cuda.json").read_text())
    record = {**committed, "result": result}
    lines = "\n".join(report_lines(record))
    assert ("200 trials: 10.1 minutes, measured" in lines) is measured
    assert ("200 trials: about 10.1 minutes, extrapolated" in lines) is not measured
