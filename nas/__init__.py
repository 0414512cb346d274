"""The engine: architectures, the decoupled block, the builder, cost, data, training, search."""

from __future__ import annotations

from nas._arch import Arch, Stage
from nas._decoupling import decoupling_degree

__version__ = "0.1.0"

__all__ = [
    "Arch",
    "Stage",
    "__version__",
    "build_model",
    "count_cost",
    "decoupling_degree",
    "measure_latency",
]


def __getattr__(name: str):
    # torch-backed names load on first use, so search spaces (which import Arch) never import
    # torch: sampling stays apart from building.
    if name == "build_model":
        from nas.builder import build_model

        return build_model
    if name in ("count_cost", "measure_latency"):
        from nas import cost

        return getattr(cost, name)
    raise AttributeError(f"module 'nas' has no attribute {name!r}")
