"""The shared command-line options: names, defaults and help texts of all seven parsers.

What every command does alike (console scripts, --version, help on every option, one-line
errors, missing extras, where outputs go) is tested in test_conventions.py."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import dashboard.__main__ as dashboard_main
from nas import confirm, export, fidelity, findings, inspect, search
from nas._cli import DATASET_SHAPES
from nas.storage import DEFAULT_STORAGE

ROOT = Path(__file__).parent.parent
PARSERS = {
    "nas.search": search.build_parser,
    "nas.export": export.build_parser,
    "nas.inspect": inspect.build_parser,
    "nas.fidelity": fidelity.build_parser,
    "nas.findings": findings.build_parser,
    "nas.confirm": confirm.build_parser,
}


def fresh_python(code: str) -> subprocess.CompletedProcess:
    """Run `code` in a new interpreter: this one has loaded torch already."""
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120
    )


def test_building_a_parser_loads_no_torch():
    # Each parser is built in turn, so a failure names the first module that pulled torch in.
    code = (
        "import importlib, json, sys\n"
        "loaded = {}\n"
        "for name in ('nas.search', 'nas.inspect', 'nas.fidelity', 'nas.findings', "
        "'nas.export', 'nas.confirm'):\n"
        "    importlib.import_module(name).build_parser().format_help()\n"
        "    loaded[name] = 'torch' in sys.modules\n"
        "import dashboard.__main__ as dashboard\n"
        "dashboard.parse_args([])\n"
        "loaded['dashboard'] = 'torch' in sys.modules\n"
        "print(json.dumps(loaded))\n"
    )
    result = fresh_python(code)
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    assert len(loaded) == 7
    assert not any(loaded.values()), loaded


def test_search_help_answers_without_torch():
    code = (
        "import runpy, sys\n"
        "sys.argv = ['nas.search', '--help']\n"
        "try:\n"
        "    runpy.run_module('nas.search', run_name='__main__')\n"
        "except SystemExit as stop:\n"
        "    print('exit', stop.code, 'torch' in sys.modules)\n"
    )
    result = fresh_python(code)
    assert "--max-mmacs" in result.stdout
    assert result.stdout.split()[-3:] == ["exit", "0", "False"], result.stderr


def test_parsers_keep_their_option_names_and_defaults():
    defaults = {
        "nas.search": (
            [],
            dict(
                space="inception_to_xception",
                trials=200,
                dataset="fashion_mnist",
                image_size=None,
                channels=None,
                data_dir=None,
                storage=DEFAULT_STORAGE,
                study=None,
                sampler="nsga2",
                objectives="acc,macs",
                budget="auto",
                epochs=None,
                max_mmacs=None,
                device="auto",
                workers="auto",
                seed=0,
                heartbeat=None,
                pruner="rungs",
                no_prune=False,
                no_landmarks=False,
                confirm=None,
                list_spaces=False,
                dry_run=False,
                worker_index=None,
            ),
        ),
        "nas.export": (
            ["--study", "s", "--pick", "knee"],
            dict(
                study="s",
                storage=DEFAULT_STORAGE,
                trial=None,
                pick="knee",
                min_acc=None,
                max_mmacs=None,
                out="model.py",
                force=False,
                onnx=None,
                train_epochs=None,
                weights=None,
                dataset=None,
                data_dir=None,
                device="auto",
                seed=0,
            ),
        ),
        "nas.confirm": (
            ["--study", "s"],
            dict(
                storage=DEFAULT_STORAGE,
                study="s",
                seeds=3,
                top=5,
                landmarks_within=None,
                final=False,
                epochs=None,
                workers="auto",
                dataset=None,
                data_dir=None,
                device="auto",
                worker_index=None,
            ),
        ),
        "nas.inspect": (
            ["xception"],
            dict(
                arch="xception",
                dataset="fashion_mnist",
                image_size=None,
                channels=None,
                json=False,
            ),
        ),
        "nas.fidelity": (
            [],
            dict(
                space="inception_to_xception",
                dataset="fashion_mnist",
                image_size=None,
                channels=None,
                data_dir=None,
                archs=30,
                full_archs=6,
                budget="auto",
                long_budget=None,
                device="auto",
                seed=0,
                runs="results/fidelity_runs.jsonl",
                out="results/fidelity.json",
            ),
        ),
        "nas.findings": (
            [],
            dict(
                dataset="fashion_mnist",
                image_size=None,
                channels=None,
                data_dir=None,
                seeds=3,
                budget="auto",
                device="auto",
                runs="results/findings_runs.jsonl",
                out="results/findings.md",
                only=None,
            ),
        ),
    }
    for name, (argv, expected) in defaults.items():
        assert vars(PARSERS[name]().parse_args(argv)) == expected, name
    served = vars(dashboard_main.parse_args([]))
    assert served == dict(
        storage=DEFAULT_STORAGE, host="127.0.0.1", port=8050, poll=5.0, debug=False
    )


@pytest.mark.parametrize(
    "option", ["--storage", "--study", "--space", "--dataset", "--budget", "--device", "--seed"]
)
def test_a_shared_option_has_one_help_text(option):
    helps = {}
    for name, build in PARSERS.items():
        if name in ("nas.export", "nas.confirm") and option == "--dataset":
            continue  # there it says where the study's own data is now: its study chose it
        action = build()._option_string_actions.get(option)
        if action is not None:
            helps[name] = action.help.replace(" (default SPACE-DATASET)", "")
    assert len(helps) >= 2, f"{option} is shared by {sorted(helps)} only"
    assert len(set(helps.values())) == 1, helps


def test_inspect_refuses_a_dataset_it_has_no_shape_for(capsys):
    assert inspect.main(["xception", "--dataset", "mnist"]) == 2
    error = capsys.readouterr().err
    assert len(error.strip().splitlines()) == 1
    assert all(name in error for name in DATASET_SHAPES)


def test_the_study_is_required_where_a_command_reads_one(capsys):
    with pytest.raises(SystemExit) as stop:
        export.build_parser().parse_args(["--pick", "knee"])
    assert stop.value.code == 2 and "--study" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--port", "70000"], "argument --port: must be 1-65535, got 70000"),
        (["--port", "0"], "argument --port: must be 1-65535, got 0"),
        (["--port", "http"], "argument --port: expected a whole number, got 'http'"),
        (["--poll", "nan"], "argument --poll: must be a positive number of seconds, got nan"),
        (["--poll", "inf"], "argument --poll: must be a positive number of seconds, got inf"),
        (["--poll", "0"], "argument --poll: must be a positive number of seconds, got 0"),
        (["--bogus"], "unrecognized arguments: --bogus"),
    ],
    ids=["port 70000", "port 0", "port word", "poll nan", "poll inf", "poll 0", "unknown option"],
)
def test_dashboard_refuses_bad_options_in_one_line(args, message, tmp_path, capsys):
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    with pytest.raises(SystemExit) as stop:
        dashboard_main.main(["--storage", storage, *args])
    assert stop.value.code == 2
    error = capsys.readouterr().err
    assert len(error.strip().splitlines()) == 1, error
    assert error.startswith(f"error: {message} (see python -m dashboard --help)"), error
    assert not list(tmp_path.iterdir())


def test_dashboard_refuses_a_port_in_use_in_one_line(tmp_path, capsys):
    with socket.create_server(("127.0.0.1", 0)) as held:
        port = held.getsockname()[1]
        code = dashboard_main.main(
            ["--storage", f"sqlite:///{tmp_path / 'studies.db'}", "--port", str(port)]
        )
    assert code == 2
    error = capsys.readouterr().err
    assert len(error.strip().splitlines()) == 1, error
    assert f"cannot serve on 127.0.0.1:{port}: the port is in use; pick another --port" in error
    assert not list(tmp_path.iterdir())
