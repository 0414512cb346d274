"""What every command does alike, tried as a user would: console scripts beside `python -m`,
`--version`, help on every option, one-line errors with exit status 2, a missing optional extra
named with the line that installs it, and outputs that stay in the folder a command runs in."""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import dashboard.__main__ as dashboard_main
import nas
from nas import _cli, findings, inspect, search, storage
from tests.test_cli import PARSERS as COMMAND_PARSERS
from tests.test_export import make_study

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pytest itself depends on tomli there
    import tomli as tomllib

ROOT = Path(__file__).parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT, TOOL = PYPROJECT["project"], PYPROJECT["tool"]
SCRIPTS = PROJECT["scripts"]
# Each console script and the module `python -m` runs for the same command.
MODULES = {
    "nas-search": "nas.search",
    "nas-export": "nas.export",
    "nas-inspect": "nas.inspect",
    "nas-fidelity": "nas.fidelity",
    "nas-findings": "nas.findings",
    "nas-confirm": "nas.confirm",
    "nas-dashboard": "dashboard",
}
PARSERS = {**COMMAND_PARSERS, "dashboard": dashboard_main.build_parser}
ONNX_LINE = "error: --onnx needs the onnx extra: pip install 'nas-spectrum[onnx]'"
POSTGRES_EXTRA = (
    "a PostgreSQL storage needs the postgres extra: pip install 'nas-spectrum[postgres]'"
)
# What a command needs besides options to get as far as its options.
REQUIRED = {
    "nas.export": ["--study", "s", "--pick", "knee"],
    "nas.inspect": ["xception"],
    "nas.confirm": ["--study", "s"],
}


def python(*args: str, cwd: Path = ROOT, shim: Path | None = None) -> subprocess.CompletedProcess:
    """A new interpreter on this checkout (with `shim` first on the path, to hide a module)."""
    path = [str(shim)] if shim else []
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([*path, str(ROOT)]),
        "NAS_NO_DOWNLOAD": "1",
        "OMP_NUM_THREADS": "1",
    }
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def hiding(module: str, folder: Path) -> Path:
    """A folder whose `module` package raises ImportError: as if it were not installed."""
    package = folder / module
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(f"raise ImportError('{module} hidden by a test')\n")
    return folder


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


# --- console scripts and --version ------------------------------------------------------------


def test_every_command_has_a_console_script():
    assert set(SCRIPTS) == set(MODULES)
    for script, target in SCRIPTS.items():
        module, _, function = target.partition(":")
        runs = MODULES[script]
        # The script calls the very main that `python -m` runs.
        assert module in (runs, f"{runs}.__main__") and function == "main", script


@pytest.mark.parametrize("script", sorted(MODULES))
def test_a_console_script_answers_version_and_help(script):
    module, _, function = SCRIPTS[script].partition(":")
    # What the installed script does: argv[0] is its own name, sys.exit(main()).
    code = (
        "import json, sys\n"
        f"from {module} import {function} as main\n"
        f"sys.argv[0] = '/some/bin/{script}'\n"
        "answers = {}\n"
        "for option in ('--version', '--help'):\n"
        "    sys.argv[1:] = [option]\n"
        "    try:\n"
        "        sys.exit(main())\n"
        "    except SystemExit as stop:\n"
        "        answers[option] = stop.code\n"
        "print(json.dumps(answers))\n"
    )
    result = python("-c", code)
    assert result.returncode == 0, result.stderr
    version_line, *help_lines, answers = result.stdout.splitlines()
    assert json.loads(answers) == {"--version": 0, "--help": 0}
    assert version_line == f"{script} {nas.__version__}"
    assert help_lines[0].startswith(f"usage: {script} ")


@pytest.mark.parametrize("script", sorted(MODULES))
def test_python_m_gives_the_same_version(script, tmp_path):
    result = python("-m", MODULES[script], "--version", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{script} {nas.__version__}\n"
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("script", sorted(MODULES))
def test_the_installed_script_runs(script, tmp_path):
    # Installed beside the interpreter by pip install -e . (the README's set-up and CI's), and
    # so on PATH wherever that interpreter's folder is.
    beside = Path(sys.executable).with_name(script)
    installed = str(beside) if beside.exists() else shutil.which(script)
    assert installed is not None, f"{script} is not on PATH: run pip install -e . first"
    result = subprocess.run(
        [installed, "--version"], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{script} {nas.__version__}\n"


def test_the_version_has_one_home():
    # The package metadata is built from nas.__version__, which studies record too.
    assert "version" not in PROJECT and PROJECT["dynamic"] == ["version"]
    assert TOOL["setuptools"]["dynamic"]["version"] == {"attr": "nas.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", nas.__version__)
    # What pip installed was built from it.
    assert importlib.metadata.version("nas-spectrum") == nas.__version__


def test_the_version_without_package_metadata_is_the_source_trees(monkeypatch):
    asked = []

    def not_installed(name):
        asked.append(name)
        raise _cli.importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(_cli.importlib.metadata, "version", not_installed)
    monkeypatch.setattr(nas, "__version__", "9.8.7")
    version = search.build_parser()._option_string_actions["--version"].version
    assert version == "nas-search 9.8.7" and asked == ["nas-spectrum"]


# --- help and errors ----------------------------------------------------------------------------


@pytest.mark.parametrize("module", sorted(PARSERS))
def test_every_option_has_help(module):
    parser = PARSERS[module]()
    shown = [action for action in parser._actions if action.help != argparse.SUPPRESS]
    assert len(shown) >= 4
    bare = [action.option_strings or [action.dest] for action in shown if not action.help]
    assert not bare, f"{module}: no help for {bare}"


@pytest.mark.parametrize("module", sorted(PARSERS))
def test_an_unknown_option_is_one_line_and_exit_2(module, tmp_path):
    error = one_line_error(
        python("-m", module, *REQUIRED.get(module, []), "--bogus", cwd=tmp_path)
    )
    assert error == f"error: unrecognized arguments: --bogus (see python -m {module} --help)"
    assert not list(tmp_path.iterdir())


def test_the_dashboard_refuses_a_port_out_of_range(tmp_path):
    error = one_line_error(python("-m", "dashboard", "--port", "99999", cwd=tmp_path))
    assert error == (
        "error: argument --port: must be 1-65535, got 99999 (see python -m dashboard --help)"
    )
    assert not list(tmp_path.iterdir())


def test_an_error_names_the_console_script_it_came_from(capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["/some/bin/nas-inspect", "xception", "--bogus"])
    with pytest.raises(SystemExit) as stop:
        inspect.main()
    assert stop.value.code == 2
    error = capsys.readouterr().err
    assert error == "error: unrecognized arguments: --bogus (see nas-inspect --help)\n"


# --- missing optional extras ------------------------------------------------------------------


def test_onnx_export_without_the_onnx_extra_names_it(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    url = f"sqlite:///{work / 'studies.db'}"
    make_study(url)
    shim = hiding("onnx", tmp_path / "shim")
    args = ("--storage", url, "--study", "s", "--pick", "knee", "--onnx", "model.onnx")
    result = python("-m", "nas.export", *args, cwd=work, shim=shim)
    assert one_line_error(result) == ONNX_LINE
    assert [path.name for path in work.iterdir()] == ["studies.db"]  # no model.py either


@pytest.mark.parametrize(
    "command",
    [
        ["dashboard"],
        ["nas.export", "--study", "s", "--pick", "knee"],
        ["nas.search", "--dataset", "digits", "--trials", "1"],
    ],
    ids=["dashboard", "export", "search"],
)
def test_postgresql_without_its_driver_names_the_extra(command, tmp_path):
    shim = hiding("psycopg", tmp_path / "shim")
    url = "postgresql+psycopg://nas:secret@127.0.0.1:9/nowhere"
    work = tmp_path / "work"
    work.mkdir()
    error = one_line_error(python("-m", *command, "--storage", url, cwd=work, shim=shim))
    assert error == (
        "error: no database driver for postgresql+psycopg://nas:***@127.0.0.1:9/nowhere "
        f"(psycopg hidden by a test): {POSTGRES_EXTRA}"
    )
    assert not list(work.iterdir())


def test_a_bare_postgresql_url_without_psycopg2_is_told_the_driver_to_name():
    missing = ModuleNotFoundError("No module named 'psycopg2'", name="psycopg2")
    message = storage._no_driver("postgresql://nas@db/studies", missing)
    assert message == (
        "no database driver for postgresql://nas@db/studies (No module named 'psycopg2'): "
        f"write the URL as postgresql+psycopg://...; {POSTGRES_EXTRA}"
    )


# --- where the experiment commands write ------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "runs", "out"),
    [
        ("nas.fidelity", "results/fidelity_runs.jsonl", "results/fidelity.json"),
        ("nas.findings", "results/findings_runs.jsonl", "results/findings.md"),
    ],
)
def test_outputs_default_to_results_in_the_current_folder(module, runs, out, tmp_path):
    result = python("-m", module, "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert f"(default {runs}, in the current folder)" in text
    assert f"(default {out}, in the current folder)" in text
    assert "bench/" not in text and "docs/" not in text
    # A refused run makes nothing, here or under bench/.
    refused = python("-m", module, "--budget", "3 epochs", cwd=tmp_path)
    assert one_line_error(refused).startswith("error: budget '3 epochs' is not EPOCHSxSIZE")
    assert not list(tmp_path.iterdir())


def test_findings_writes_its_report_under_results(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    # The speed table trains nothing: costs and latencies only.
    argv = ["--dataset", "digits", "--only", "speed", "--budget", "1x200", "--device", "cpu"]
    assert findings.main(argv) == 0
    assert [path.name for path in tmp_path.iterdir()] == ["results"]
    written = sorted(path.name for path in (tmp_path / "results").iterdir())
    assert written == ["findings.json", "findings.md"]
    assert "5. FLOPs versus speed" in (tmp_path / "results/findings.md").read_text()
    assert capsys.readouterr().err.strip().endswith("wrote results/findings.md")


def test_the_licence_is_mit_and_in_the_metadata():
    assert PROJECT["license"] == "MIT" and PROJECT["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License\n\nCopyright (c) 2026 the nas-spectrum authors\n")
    assert 'THE SOFTWARE IS PROVIDED "AS IS"' in text
