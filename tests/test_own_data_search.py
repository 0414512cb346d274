"""The real commands on a user's own data: a folder of PNG files and an .npz, end to end.

Search (with the stem adapted to the images), continue from the cache, refuse changed data,
export with the class names and final training on the test split, inspect and dry-run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from dashboard import callbacks
from dashboard.data import FrameCache
from dashboard.storage import StorageReader
from nas import Arch
from nas.cost import count_cost
from nas.user_data import describe_user_dataset
from search_spaces import landmarks_for
from tests.image_folders import FOLDER_NAMES, user_data_cache, write_image_folder, write_npz

assert user_data_cache  # autouse: each test decodes into its own cache folder

REPO = Path(__file__).parent.parent
# A budget of seconds on a few dozen images: what is tested is the data path, not accuracy.
TINY_BUDGET = ["--budget", "1x40"]


def run(module: str, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "NAS_NO_DOWNLOAD": "1"}
    return subprocess.run(
        [sys.executable, "-m", module, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=REPO,
    )


def errors_of(done: subprocess.CompletedProcess) -> list[str]:
    return [line for line in done.stderr.splitlines() if line.startswith("error:")]


def test_search_on_an_image_folder_adapts_the_stem_resumes_and_exports(tmp_path):
    folder = tmp_path / "my_pets"
    written = write_image_folder(folder, classes=3, per_class=16, sides=(56, 72))
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    search = ["--dataset", folder, "--image-size", "64", "--storage", storage, *TINY_BUDGET]

    first = run("nas.search", *search, "--trials", "2")
    assert first.returncode == 0, first.stderr
    study = optuna.load_study(study_name="inception_to_xception-my_pets", storage=storage)
    attrs = study.user_attrs
    assert attrs["dataset"] == str(folder.resolve())
    assert attrs["dataset_name"] == "my_pets"
    assert attrs["class_names"] == sorted(FOLDER_NAMES[:3])
    assert attrs["input_shape"] == [1, 64, 64] and attrs["num_classes"] == 3
    assert attrs["image_size"] == 64 and len(attrs["data_fingerprint"]) >= 16
    trials = study.get_trials(deepcopy=False)
    # 64 px: the stem halves the images once, so the stages see 32 px as at 28 x 28.
    assert [Arch.parse(t.user_attrs["arch"]).stem_stride for t in trials] == [2, 2]
    assert trials[0].user_attrs["landmark"] == "normal"

    again = run("nas.search", *search, "--trials", "3")
    assert again.returncode == 0, again.stderr
    assert "decoding" not in again.stderr.lower()  # read from the cache
    assert "decoding" in first.stderr.lower()
    assert len(study.get_trials(deepcopy=False)) == 3

    # The folder changes: continuing the study on it is refused, and the study is untouched.
    extra = written[0].path.with_name("added.png")
    extra.write_bytes(written[0].path.read_bytes())
    changed = run("nas.search", *search, "--trials", "4")
    assert changed.returncode == 2
    assert len(errors_of(changed)) == 1 and "other data" in errors_of(changed)[0]
    assert "Traceback" not in changed.stderr
    assert len(study.get_trials(deepcopy=False)) == 3
    extra.unlink()

    out = tmp_path / "model.py"
    exported = run(
        "nas.export", "--study", study.study_name, "--storage", storage, "--pick", "best",
        "--out", out, "--train-epochs", "1",
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    code = out.read_text()
    names = sorted(FOLDER_NAMES[:3])
    assert f"0 {names[0]}, 1 {names[1]}, 2 {names[2]}" in code
    assert "STEM_STRIDE = 2" in code and "INPUT_SHAPE = (1, 64, 64)" in code
    checked = subprocess.run(
        [sys.executable, str(out)], capture_output=True, text=True, timeout=120
    )
    assert checked.returncode == 0, checked.stderr


def test_search_on_an_npz_with_class_names(tmp_path):
    path = tmp_path / "flowers.npz"
    write_npz(path, classes=3, per_class=20, layout="nchw", class_names=("daisy", "rose", "tulip"))
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    done = run(
        "nas.search", "--dataset", path, "--storage", storage, "--trials", "1", *TINY_BUDGET
    )
    assert done.returncode == 0, done.stderr
    study = optuna.load_study(study_name="inception_to_xception-flowers", storage=storage)
    assert study.user_attrs["class_names"] == ["daisy", "rose", "tulip"]
    assert study.user_attrs["input_shape"] == [1, 28, 28]
    (trial,) = study.get_trials(deepcopy=False)
    assert trial.state == optuna.trial.TrialState.COMPLETE
    assert Arch.parse(trial.user_attrs["arch"]).stem_stride == 1


def test_dry_run_and_inspect_show_the_cost_on_large_images(tmp_path):
    folder = tmp_path / "big"
    write_image_folder(folder, classes=2, per_class=3, sides=(224,), colour=True)
    shape = describe_user_dataset(folder)
    assert shape.input_shape == (3, 224, 224)

    dry = run("nas.search", "--dataset", folder, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "stem stride 8: the stages see 28x28 pixels" in dry.stdout
    assert "(3x224x224, 2 classes)" in dry.stdout
    assert not list((tmp_path / "cache").rglob("*.npz"))  # a dry run decodes nothing

    inspected = run("nas.inspect", "xception", "--dataset", folder, "--json")
    assert inspected.returncode == 0, inspected.stderr
    info = json.loads(inspected.stdout)
    assert info["arch"].startswith("stem16s8-") and info["input_shape"] == [3, 224, 224]
    plain = run("nas.inspect", "xception", "--dataset", folder, "--channels", "1", "--json")
    # The same images in grey: the stem's first conv has a third of the weights.
    assert json.loads(plain.stdout)["params"] == info["params"] - 2 * 9 * 16


@pytest.mark.parametrize(
    "args, message",
    [
        (["--dataset", "no/such/folder"], "(no such file or folder here)"),
        (["--dataset", "digits", "--image-size", "32"], "apply to a folder or .npz"),
        (["--dataset", "{empty}"], "{empty}"),
    ],
)
def test_bad_datasets_are_refused_in_one_line_before_anything_exists(tmp_path, args, message):
    empty = tmp_path / "empty"
    empty.mkdir()
    args = [arg.format(empty=empty) for arg in args]
    storage = tmp_path / "studies.db"
    done = run("nas.search", *args, "--storage", f"sqlite:///{storage}", "--trials", "1")
    assert done.returncode == 2
    assert len(errors_of(done)) == 1 and message.format(empty=empty) in errors_of(done)[0]
    assert "Traceback" not in done.stderr
    assert not storage.exists()


def test_the_trial_page_names_the_data_and_its_classes_as_text(tmp_path):
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    study = optuna.create_study(storage=url, study_name="own", directions=["maximize", "minimize"])
    names = ["cat", "<b>dog</b>", *(f"class{index}" for index in range(30))]
    attrs = {
        "objectives": ["val_acc", "macs"],
        "dataset": "/data/my_pets",
        "dataset_name": "my_pets",
        "class_names": names,
        "input_shape": [3, 96, 96],
        "num_classes": len(names),
    }
    for key, value in attrs.items():
        study.set_user_attr(key, value)
    arch = landmarks_for((3, 96, 96))["mobilenet"]
    record = {"arch": str(arch), "macs": count_cost(arch, (3, 96, 96), len(names)).macs}
    study.add_trial(optuna.trial.create_trial(values=[0.5, record["macs"]], user_attrs=record))
    reader = StorageReader(url)
    try:
        page = callbacks.trial_view(FrameCache(reader), "own", 0).to_plotly_json()
    finally:
        reader.close()
    text = str(page)
    # The first 20 classes by label, the rest counted; a name with markup stays plain text.
    assert "my_pets (3x96x96; 32 classes: 0 cat, 1 <b>dog</b>, 2 class0," in text
    assert "19 class17 and 12 more)" in text
    assert "/data/my_pets" not in text  # named by its folder, not its whole path
    assert "dangerouslySetInnerHTML" not in text
