"""The first stage of bench/gpu.sh: can every later stage run here? Fails fast if not.

Imports what the stages import (ptflops and Optuna among them: the GPU image lacks them unless
bench/gpu_pack.sh's wheels were installed), checks the device and loads the dataset, and
writes what it found to OUT/env.json: versions, the GPU, the cores, the dataset's source.

    python bench/gpu_env.py --device cuda --out /tmp/gpu
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# What the stages need besides the standard library; each name a user would pip install.
NEEDED = {
    "torch": "torch",
    "numpy": "numpy",
    "optuna": "optuna",
    "ptflops": "ptflops",
    "sqlalchemy": "SQLAlchemy",
    "alembic": "alembic",
    "sklearn": "scikit-learn",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true", help="accepted for symmetry; no effect")
    parser.add_argument("--out", required=True, help="folder for env.json")
    args = parser.parse_args(argv)

    versions, missing = {}, []
    for module, package in NEEDED.items():
        try:
            importlib.import_module(module)
            versions[package] = importlib.metadata.version(package)
        except Exception as error:  # an ImportError, or a package broken on this Python
            missing.append(f"{package} ({type(error).__name__}: {error})")
    if missing:
        print(
            "error: cannot import " + "; ".join(missing) + ": run bench/gpu_pack.sh here and "
            "carry .gpu_pack, or pip install them",
            file=sys.stderr,
        )
        return 1

    import torch

    import nas.search  # noqa: F401  (the search's own imports, checked before any stage runs)
    from bench._machine import machine
    from nas.data import load_dataset
    from nas.train import resolve_device

    try:
        device = resolve_device(args.device)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    start = time.perf_counter()
    data = load_dataset("fashion_mnist")  # the search stage's dataset; fails here if absent
    record = {
        "device": device,
        "machine": machine(),
        "python": sys.version.split()[0],
        "packages": versions,
        "torch_cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if device.startswith("cuda") else None,
        "gpu": torch.cuda.get_device_name(device) if device.startswith("cuda") else None,
        "dataset": {
            "name": data.name,
            "train": len(data.train_x),
            "source": os.environ.get("NAS_DATA_DIR") or "nas.data's search path",
        },
        "dataset_load_s": round(time.perf_counter() - start, 2),
    }
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "env.json").write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({k: record[k] for k in ("device", "python", "packages", "gpu")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
