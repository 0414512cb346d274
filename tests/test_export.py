"""The exporter: standalone files that build the searched network, safe provenance, strict CLI."""

from __future__ import annotations

import ast
import datetime
import json
import os
import re
import sqlite3
import subprocess
import sys
import warnings
from pathlib import Path

import optuna
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from optuna.trial import TrialState, create_trial

import nas
from nas import Arch, build_model
from nas._codegen import _docstring
from nas.builder import stage_specs
from nas.cost import count_cost
from nas.export import code_for_trial, generate_code, pick_trial
from nas.storage import load_study
from search_spaces import LANDMARKS, landmarks_for
from tests.arch_samples import PAPER_BLOCKS, random_archs

REPO = Path(__file__).resolve().parent.parent
SITE_DIRS = sorted(
    {path for path in sys.path if path.endswith(("site-packages", "dist-packages"))}
)
# A small network with several branches, a 1x1 before and a residual: most of the builder.
TINY = str(
    Arch.parse("stem8-c16_d1_s2_k1.3.pool_g1_pbefore_f0_a1_r0-c24_d1_s2_k3_gdw_pafter_f0_a0_r1")
)
DIGITS_SHAPE = (1, 8, 8)

optuna.logging.set_verbosity(optuna.logging.WARNING)


# --- running generated files where `nas` cannot be imported ----------------------------------

# Every isolated script starts here: -I leaves PYTHONPATH, the user site and the script's and
# working folders off sys.path, and -S skips site processing, so the editable install's import
# hook (a .pth file) never loads. The script then adds the site-packages folders (for torch).
PREAMBLE = """\
import importlib.util, json, runpy, sys
sys.path.extend(json.loads(sys.argv[1]))
if importlib.util.find_spec("nas") is not None:
    raise SystemExit("nas is importable in the isolated interpreter")
import torch
torch.set_num_threads(1)


def load(path):
    spec = importlib.util.spec_from_file_location("exported_" + str(abs(hash(path))), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
"""

# Loads many generated files in one interpreter; for each: state_dict layout, outputs on the
# given inputs with the given weights, and ptflops' count.
CHECK_MODELS = (
    PREAMBLE
    + """
from ptflops import get_model_complexity_info

results = {}
for job in json.loads(open(sys.argv[2]).read()):
    module = load(job["file"])
    model = module.build_model().eval()
    layout = [[key, list(value.shape)] for key, value in model.state_dict().items()]
    model.load_state_dict(torch.load(job["weights"]))
    with torch.no_grad():
        torch.save(model(torch.load(job["inputs"])), job["outputs"])
    macs, _ = get_model_complexity_info(
        model, tuple(module.INPUT_SHAPE), as_strings=False, print_per_layer_stat=False,
        backend="aten", verbose=False,
    )
    results[job["name"]] = {
        "layout": layout,
        "macs": int(macs),
        "params": sum(p.numel() for p in model.parameters()),
        "constants": [module.ARCH, list(module.INPUT_SHAPE), module.MACS, module.PARAMS],
    }
results["modules"] = sorted(name for name in sys.modules if name.split(".")[0] == "nas")
json.dump(results, open(sys.argv[3], "w"))
"""
)

# `python FILE [ARGS]` for each FILE given, as __main__; prints each one's exit status.
RUN_MAIN = (
    PREAMBLE
    + """
for path in sys.argv[2:]:
    sys.argv = [path]
    try:
        runpy.run_path(path, run_name="__main__")
        code = 0
    except SystemExit as exit:
        code = exit.code
    print("EXIT", json.dumps([path, code]))
"""
)


def run_isolated(script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    driver = cwd / "_driver.py"
    driver.write_text(script)
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env["OMP_NUM_THREADS"] = "1"
    command = [sys.executable, "-I", "-S", str(driver), json.dumps(SITE_DIRS), *args]
    try:
        return subprocess.run(
            command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600
        )
    finally:
        driver.unlink()


def run_mains(paths: list[Path], cwd: Path) -> tuple[dict, subprocess.CompletedProcess]:
    """Run each file as `python FILE` in one isolated interpreter: ({path: exit status}, run)."""
    result = run_isolated(RUN_MAIN, *map(str, paths), cwd=cwd)
    assert result.returncode == 0, result.stderr
    exits = [json.loads(line[5:]) for line in result.stdout.splitlines() if line[:5] == "EXIT "]
    return {path: code for path, code in exits}, result


# --- every landmark and random architectures, exported and rebuilt in isolation -------------


def export_cases() -> list[tuple[str, Arch, tuple[int, int, int]]]:
    cases = [(name, arch, (1, 28, 28)) for name, arch in LANDMARKS.items()]
    # Strided stems, for larger images: a conv and a max pool (96), an average pool first (224).
    for shape, name in (((3, 96, 96), "inception_v1"), ((3, 224, 224), "xception")):
        cases.append((f"{name}_{shape[1]}px", landmarks_for(shape)[name], shape))
    cases += [
        (f"paper_block_{index}", arch, (3, 16, 16)) for index, arch in enumerate(PAPER_BLOCKS)
    ]
    seen = {str(arch) for _, arch, _ in cases}
    for space in ("inception_to_xception", "xception_spectrum"):
        for index, arch in enumerate(random_archs(space, 20, seed=7)):
            if str(arch) not in seen:  # the Xception sweep has few distinct points
                seen.add(str(arch))
                cases.append((f"{space}_{index}", arch, (3, 8, 8)))
    return cases


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Each case exported, its reference outputs, and what an isolated interpreter saw."""
    folder = tmp_path_factory.mktemp("exported")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same kernels as the isolated interpreter
    cases, jobs = {}, []
    try:
        for seed, (name, arch, shape) in enumerate(export_cases()):
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # trimming must not fall back to the full builder
                code = generate_code(
                    arch, input_shape=shape, num_classes=10, provenance={"study": "t"}
                )
            torch.manual_seed(seed)
            reference = build_model(arch, shape[0], 10)
            for module in reference.modules():  # non-trivial BatchNorm statistics
                if isinstance(module, torch.nn.BatchNorm2d):
                    module.running_mean.normal_()
                    module.running_var.uniform_(0.5, 2.0)
            inputs = torch.randn(3, *shape)
            with torch.no_grad():
                expected = reference.eval()(inputs)
            files = {key: folder / f"{name}.{key}" for key in ("py", "pt", "in", "out")}
            files["py"].write_text(code)
            torch.save(reference.state_dict(), files["pt"])
            torch.save(inputs, files["in"])
            cases[name] = {"arch": arch, "shape": shape, "code": code, "expected": expected}
            jobs.append(
                {
                    "name": name,
                    "file": str(files["py"]),
                    "weights": str(files["pt"]),
                    "inputs": str(files["in"]),
                    "outputs": str(files["out"]),
                }
            )
    finally:
        torch.set_num_threads(threads)
    (folder / "jobs.json").write_text(json.dumps(jobs))
    result = run_isolated(
        CHECK_MODELS, str(folder / "jobs.json"), str(folder / "results.json"), cwd=folder
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads((folder / "results.json").read_text())
    for name, case in cases.items():
        case["seen"] = seen[name]
        case["outputs"] = torch.load(folder / f"{name}.out")
    return {"folder": folder, "cases": cases, "nas_modules": seen["modules"]}


def test_exported_files_cover_landmarks_and_both_spaces(exported):
    names = list(exported["cases"])
    assert set(LANDMARKS) <= set(names)
    assert sum(name.startswith("inception_to_xception") for name in names) >= 15
    assert sum(name.startswith("xception_spectrum") for name in names) >= 3


def test_exported_files_build_the_searched_network(exported):
    assert exported["nas_modules"] == []  # nothing of ours was loaded in isolation
    for name, case in exported["cases"].items():
        arch, shape, seen = case["arch"], case["shape"], case["seen"]
        reference = build_model(arch, shape[0], 10).state_dict()
        assert seen["layout"] == [[key, list(value.shape)] for key, value in reference.items()]
        assert torch.equal(case["outputs"], case["expected"]), name
        recorded = count_cost(arch, shape, 10)  # what the search stores as `macs`, `params`
        assert seen["macs"] == recorded.macs, name
        assert seen["params"] == recorded.params, name
        assert seen["constants"] == [str(arch), list(shape), recorded.macs, recorded.params]


def test_exported_files_import_only_torch_and_the_standard_library(exported):
    for name, case in exported["cases"].items():
        tree = ast.parse(case["code"])
        roots = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                roots.add(node.module.split(".")[0])
        assert roots <= set(sys.stdlib_module_names) | {"torch"}, (name, roots)
        assert "search_spaces" not in case["code"] and "optuna" not in case["code"]


def test_exported_files_pass_ruff(exported):
    folder = exported["folder"]
    config = str(REPO / "pyproject.toml")
    for command in (["check"], ["format", "--check"]):
        result = subprocess.run(
            [sys.executable, "-m", "ruff", *command, "--no-cache", "--config", config, "."],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_export_leaves_out_code_the_architecture_never_reaches(exported):
    cases = exported["cases"]
    normal, inception = cases["normal"]["code"], cases["inception_v3"]["code"]
    assert "MaxPool2d" not in normal and "self.shortcut(x)" not in normal
    # Inception-v3's pool branch is an average pool: the max pool's code is left out.
    assert "AvgPool2d" in inception and "MaxPool2d" not in inception and "torch.cat" in inception
    assert "self.shortcut(x)" in cases["xception"]["code"]
    for code in (normal, inception):
        assert "def make_branch(" in code and "class DecoupledBlock(" in code


def test_export_writes_a_readable_stage_list(exported):
    code = exported["cases"]["inception_v3"]["code"]
    namespace: dict = {}
    exec(compile(code, "<export>", "exec"), namespace)
    assert namespace["STAGES"] == stage_specs(LANDMARKS["inception_v3"])
    assert "    # stage 1: 16 -> 32 channels, 28x28 -> 14x14\n    {\n" in code


def test_running_the_file_checks_it(exported, tmp_path):
    good = tmp_path / "good.py"
    good.write_text(exported["cases"]["xception"]["code"])
    tampered = tmp_path / "tampered.py"
    tampered.write_text(
        exported["cases"]["normal"]["code"].replace("\nPARAMS = ", "\nPARAMS = 1 + ")
    )
    exits, result = run_mains([good, tampered], tmp_path)
    assert exits[str(good)] == 0
    assert "ok: " in result.stdout and str(LANDMARKS["xception"]) in result.stdout
    assert "PARAMS says" in str(exits[str(tampered)])


# --- studies as nas.search writes them -------------------------------------------------------


def make_study(url: str, name: str = "s", **attrs) -> optuna.Study:
    """A study with the search's schema: trial 0 complete, 1 pruned, 2 failed, 3 complete."""
    study = optuna.create_study(study_name=name, storage=url, directions=["maximize", "minimize"])
    settings = {
        "space": "inception_to_xception",
        "dataset": "digits",
        "budget": "4x600",
        "version": nas.__version__,
        "objectives": ["val_acc", "macs"],
        "input_shape": list(DIGITS_SHAPE),
        "num_classes": 10,
        "command": "python -m nas.search --dataset digits --trials 4",
        "device": "cpu",
        **attrs,
    }
    for key, value in settings.items():
        study.set_user_attr(key, value)
    cost = count_cost(TINY, DIGITS_SHAPE, 10)
    done = {"arch": TINY, "macs": cost.macs, "params": cost.params, "val_acc_curve": [0.5, 0.8]}
    xception = str(LANDMARKS["xception"])
    big = count_cost(xception, DIGITS_SHAPE, 10)
    study.add_trial(
        create_trial(state=TrialState.COMPLETE, values=[0.8, cost.macs], user_attrs=done)
    )
    study.add_trial(
        create_trial(state=TrialState.PRUNED, user_attrs={"arch": TINY, "pruned_at_epoch": 1})
    )
    study.add_trial(create_trial(state=TrialState.FAIL, user_attrs={"failure": "diverged"}))
    study.add_trial(
        create_trial(
            state=TrialState.COMPLETE,
            values=[0.9, big.macs],
            user_attrs={"arch": xception, "macs": big.macs, "landmark": "xception"},
        )
    )
    return study


def export_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "NAS_NO_DOWNLOAD": "1"}
    return subprocess.run(
        [sys.executable, "-m", "nas.export", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def storage(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    make_study(url)
    return url


def test_cli_exports_a_trial_with_its_provenance(storage, tmp_path):
    result = export_cli("--storage", storage, "--study", "s", "--pick", "knee", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    code = (tmp_path / "model.py").read_text()
    docstring = ast.get_docstring(ast.parse(code))
    for fact in (
        "study: s",
        "trial: 3",  # of two front points, the knee pick takes the more accurate
        "knee of the accuracy / log-MACs Pareto front",
        "dataset: digits",
        "validation accuracy: 0.9000",
        f"MACs: {count_cost(LANDMARKS['xception'], DIGITS_SHAPE, 10).macs:,} multiply-acc",
        "search command: python -m nas.search --dataset digits --trials 4",
        f"nas-spectrum {nas.__version__}",
        datetime.date.today().isoformat(),
        "landmark: xception",
    ):
        assert fact in docstring, fact
    # The same file as the dashboard's download, but for the line that says how it was picked.
    download = code_for_trial(load_study(storage, "s"), 3)
    assert code.split('"""', 2)[2] == download.split('"""', 2)[2]


def test_code_for_trial_is_the_dashboard_api(storage):
    study = load_study(storage, "s")
    code = code_for_trial(study, 0)
    namespace: dict = {}
    exec(compile(code, "<export>", "exec"), namespace)
    assert namespace["ARCH"] == TINY
    assert namespace["build_model"]()(torch.zeros(2, *DIGITS_SHAPE)).shape == (2, 10)
    with pytest.raises(ValueError, match="stopped early"):
        code_for_trial(study, 1)
    with pytest.raises(ValueError, match="no trial 9"):
        code_for_trial(study, 9)


# --- nothing from the storage becomes code ---------------------------------------------------

HOSTILE = [
    'x"""\nimport os; os.system("touch pwned")\n"""',
    "ends in a backslash\\",
    'q" + __import__("os").system("touch pwned") + "',
    "'''\r\n\\N{BULLET}\u2028\tfinal\"",
]


def test_storage_values_cannot_inject_code(tmp_path):
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    for hostile in HOSTILE:
        make_study(
            url, name=hostile, command=hostile, dataset=hostile, budget=hostile, space=hostile
        )
    paths = []
    for index, hostile in enumerate(HOSTILE):
        code = code_for_trial(load_study(url, hostile), 0)
        tree = ast.parse(code)
        # The file holds a docstring and definitions only: no statement of the storage's making.
        assert [type(node).__name__ for node in tree.body[:2]] == ["Expr", "ImportFrom"]
        kinds = (ast.Import, ast.ImportFrom, ast.Assign, ast.FunctionDef, ast.ClassDef)
        assert all(isinstance(node, kinds) for node in tree.body[1:-1])
        assert ast.unparse(tree.body[-1].test) == "__name__ == '__main__'"
        docstring = ast.get_docstring(tree, clean=False)
        assert f"study: {repr(hostile)[:40]}" in docstring
        paths.append(tmp_path / f"hostile{index}.py")
        paths[-1].write_text(code)
    exits, _result = run_mains(paths, tmp_path)
    assert set(exits.values()) == {0}
    result = export_cli("--storage", url, "--study", HOSTILE[0], "--trial", "0", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    ast.parse((tmp_path / "model.py").read_text())
    assert not list(tmp_path.rglob("pwned*"))


@settings(max_examples=300, deadline=None)
@given(st.text(), st.text(alphabet="\"\\'\n\r\t x#"))
def test_any_text_stays_inside_the_docstring(text, quotes):
    cost = count_cost(TINY, DIGITS_SHAPE, 10)
    provenance = {"study": text, "command": quotes + text, quotes or "label": text + quotes}
    literal = _docstring(Arch.parse(TINY), DIGITS_SHAPE, 10, cost, provenance, None)
    (statement,) = ast.parse(literal).body
    assert isinstance(statement.value, ast.Constant) and isinstance(statement.value.value, str)
    assert all(len(line) <= 99 for line in literal.splitlines())


# --- bad input: one line on stderr, exit 2, nothing written ----------------------------------


def write_foreign_sqlite(path: Path) -> None:
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE people (name TEXT)")
    connection.close()


BAD_INPUTS = {
    "unknown study": (["--study", "nope", "--trial", "0"], "no study 'nope'"),
    "unknown trial": (["--trial", "99"], "no trial 99"),
    "pruned trial": (["--trial", "1"], "was stopped early"),
    "failed trial": (["--trial", "2"], "failed (diverged)"),
    "pick matches nothing": (["--pick", "best", "--min-acc", "0.99"], "no trial to pick"),
    "cost ceiling matches nothing": (["--pick", "knee", "--max-mmacs", "1e-6"], "no trial"),
    "missing output folder": (["--trial", "0", "--out", "missing/model.py"], "does not exist"),
    "existing output": (["--trial", "0"], "exists"),
    "weights without training": (["--trial", "0", "--weights", "w.pt"], "--train-epochs"),
    "missing storage": (["--storage", "sqlite:///absent.db", "--trial", "0"], "no storage"),
    "text file storage": (["--storage", "sqlite:///notes.db", "--trial", "0"], "not a SQLite"),
    "foreign sqlite storage": (["--storage", "sqlite:///other.db", "--trial", "0"], "not an"),
    "empty file storage": (["--storage", "sqlite:///empty.db", "--trial", "0"], "not an Optuna"),
    "unknown option": (["--trial", "0", "--bogus"], "unrecognized arguments: --bogus"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_cli_refuses_bad_input(case, storage, tmp_path):
    args, message = BAD_INPUTS[case]
    (tmp_path / "notes.db").write_text("not a database\n")
    write_foreign_sqlite(tmp_path / "other.db")
    (tmp_path / "empty.db").write_bytes(b"")
    if case == "existing output":
        (tmp_path / "model.py").write_text("# mine\n")
    if "--study" not in args:
        args = ["--study", "s", *args]
    if "--storage" not in args:
        args = ["--storage", storage, *args]
    before = {path: path.read_bytes() for path in tmp_path.iterdir()}
    result = export_cli(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("error: ") and message in result.stderr, result.stderr
    assert {path: path.read_bytes() for path in tmp_path.iterdir()} == before


# A stored "arch" that is no architecture: another tool's trial, or a hostile storage.
UNREADABLE_ARCH = 'stem8-c16_d1_s1_k3_g1_pnone_f0_a0_r0-"""; import os'


def add_unreadable_trial(url: str, accuracy: float = 0.95, arch: str = UNREADABLE_ARCH) -> int:
    """A complete trial, the most accurate and the cheapest, whose "arch" cannot be parsed."""
    study = optuna.load_study(study_name="s", storage=url)
    attrs = {"arch": arch, "macs": 10}
    study.add_trial(
        create_trial(state=TrialState.COMPLETE, values=[accuracy, 10], user_attrs=attrs)
    )
    return study.trials[-1].number


# Text that is no architecture, and numbers so large that building them would overflow or
# ask for many GB (the grammar's bounds refuse them when the trial is read).
@pytest.mark.parametrize(
    "arch", [UNREADABLE_ARCH, "stem16-c32_d99999999999999999999_s1_k3_g1_pnone_f0_a0_r0"]
)
def test_cli_names_a_trial_whose_architecture_cannot_be_read(storage, tmp_path, arch):
    number = add_unreadable_trial(storage, arch=arch)
    before = sorted(tmp_path.iterdir())
    result = export_cli("--storage", storage, "--study", "s", "--trial", str(number), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert f"error: trial {number}'s architecture cannot be read: " in result.stderr
    assert result.stderr.strip().endswith("; pick another trial")
    assert sorted(tmp_path.iterdir()) == before


@pytest.mark.parametrize("pick", ["best", "smallest", "knee"])
def test_a_pick_passes_over_a_trial_whose_architecture_cannot_be_read(pick, storage, tmp_path):
    number = add_unreadable_trial(storage)  # it dominates every other trial: any pick takes it
    result = export_cli("--storage", storage, "--study", "s", "--pick", pick, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (note,) = [line for line in result.stderr.splitlines() if line.startswith("note: ")]
    assert note.startswith(f"note: skipped trial {number}: its architecture cannot be read")
    expected = {"best": "trial: 3", "smallest": "trial: 0", "knee": "trial: 3"}[pick]
    assert expected in ast.get_docstring(ast.parse((tmp_path / "model.py").read_text()))


def test_a_pick_with_only_unreadable_trials_left_is_refused(storage, tmp_path):
    add_unreadable_trial(storage)
    args = ("--storage", storage, "--study", "s", "--pick", "best", "--min-acc", "0.95")
    result = export_cli(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    error = [line for line in result.stderr.splitlines() if not line.startswith("note: ")]
    assert len(error) == 1 and error[0].startswith("error: no trial to pick"), result.stderr
    assert "whose architecture can be read (1 cannot)" in error[0]
    assert not (tmp_path / "model.py").exists()


# --- training, weights and ONNX --------------------------------------------------------------

LOAD_TRAINED = (
    PREAMBLE
    + """
module = load("model.py")
model = module.build_model(weights="model.pt").eval()
with torch.no_grad():
    torch.save(model(torch.load("inputs.pt")), "outputs.pt")
print(module.MEAN, module.STD)
"""
)


@pytest.mark.slow
def test_cli_trains_saves_loadable_weights_and_onnx(storage, tmp_path):
    import numpy as np
    import onnxruntime

    (tmp_path / "model.py").write_text("# an older export\n")
    result = export_cli(
        *("--storage", storage, "--study", "s", "--trial", "0", "--train-epochs", "1"),
        *("--onnx", "model.onnx", "--force", "--device", "cpu"),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    # The training reports its epoch as it ends, not only the result.
    assert re.search(r"^epoch 1/1: test accuracy 0\.\d{4}, .* ETA 0:00:00$", result.stderr, re.M)
    code = (tmp_path / "model.py").read_text()
    assert "test accuracy: " in code and "weights: model.pt" in code
    inputs = torch.randn(4, *DIGITS_SHAPE)
    torch.save(inputs, tmp_path / "inputs.pt")
    loaded = run_isolated(LOAD_TRAINED, cwd=tmp_path)
    assert loaded.returncode == 0, loaded.stderr
    reference = build_model(TINY, 1, 10).eval()
    reference.load_state_dict(torch.load(tmp_path / "model.pt"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            expected = reference(inputs)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(torch.load(tmp_path / "outputs.pt"), expected)
    session = onnxruntime.InferenceSession(str(tmp_path / "model.onnx"))
    (onnx_out,) = session.run(None, {"images": inputs.numpy()})
    np.testing.assert_allclose(onnx_out, expected.numpy(), rtol=1e-4, atol=1e-4)
    exits, _ = run_mains([tmp_path / "model.py"], tmp_path)
    assert exits == {str(tmp_path / "model.py"): 0}


# --- picking ---------------------------------------------------------------------------------


def study_of(points: list[tuple[float, int]]) -> optuna.Study:
    study = optuna.create_study(directions=["maximize", "minimize"])
    for accuracy, macs in points:
        attrs = {"arch": TINY, "macs": macs}
        study.add_trial(
            create_trial(state=TrialState.COMPLETE, values=[accuracy, macs], user_attrs=attrs)
        )
    study.add_trial(create_trial(state=TrialState.PRUNED, user_attrs={"pruned_at_epoch": 1}))
    study.add_trial(create_trial(state=TrialState.FAIL, user_attrs={"failure": "diverged"}))
    return study


# Trial numbers: 0 cheapest, 1 the knee, 2 and 3 costly, 4 dominated, 5 a later duplicate of 3.
FRONT = [(0.5, 10**4), (0.85, 10**5), (0.9, 10**7), (0.92, 10**8), (0.6, 10**8), (0.92, 10**8)]


def test_pick_best_smallest_and_knee():
    study = study_of(FRONT)
    assert pick_trial(study, "best").number == 3
    assert pick_trial(study, "smallest").number == 0
    # Scaled to [0, 1]: accuracy 0, .83, .95, 1 against log-MACs 0, .25, .75, 1: trial 1 is
    # farthest above the chord from the cheapest to the most accurate point.
    assert pick_trial(study, "knee").number == 1


def test_pick_filters_apply_to_every_pick():
    study = study_of(FRONT)
    assert pick_trial(study, "smallest", min_acc=0.88).number == 2
    assert pick_trial(study, "best", max_mmacs=10).number == 2
    assert pick_trial(study, "knee", min_acc=0.86).number == 3  # a two-point front: best
    assert pick_trial(study, "best", min_acc=0.8, max_mmacs=1).number == 1
    with pytest.raises(ValueError, match="no trial to pick"):
        pick_trial(study, "best", min_acc=0.95)
    with pytest.raises(ValueError, match="unknown pick"):
        pick_trial(study, "largest")


def test_pick_considers_only_complete_trials():
    study = study_of([])
    with pytest.raises(ValueError, match="0 complete trials"):
        pick_trial(study, "best")
    study.add_trial(
        create_trial(state=TrialState.COMPLETE, values=[0.3, 5000], user_attrs={"arch": TINY})
    )
    for pick in ("best", "knee", "smallest"):
        assert pick_trial(study, pick).number == 2
