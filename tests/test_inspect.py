from __future__ import annotations

import json
import subprocess
import sys

from search_spaces import LANDMARKS


def run(*args):
    return subprocess.run(
        [sys.executable, "-m", "nas.inspect", *args], capture_output=True, text=True, timeout=120
    )


def test_inspect_json_for_a_landmark():
    result = run("xception", "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["arch"] == str(LANDMARKS["xception"])
    assert info["decoupling"] == 1.0
    assert info["macs"] > 0 and info["params"] > 0
    assert sum(part["macs"] for part in info["parts"]) == info["macs"]


def test_inspect_table_for_an_arch_string_names_units():
    result = run(str(LANDMARKS["inception_v3"]), "--dataset", "cifar10")
    assert result.returncode == 0, result.stderr
    assert "stage3.block2" in result.stdout
    assert "multiply-accumulates" in result.stdout and "FLOPs" in result.stdout
    assert "3x32x32" in result.stdout


def test_unknown_name_lists_landmarks_and_exits_2():
    result = run("resnet")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    for name in LANDMARKS:
        assert name in result.stderr


def test_bad_arch_string_exits_2_naming_the_token():
    result = run("stem16-c32_d2_s2_k9_g1_pnone_f0_a0_r0")
    assert result.returncode == 2
    assert "k9" in result.stderr or "9" in result.stderr
