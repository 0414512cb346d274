"""Search spaces by name, and the landmark architectures of the spectrum."""

from __future__ import annotations

from search_spaces._landmarks import (
    LANDMARKS,
    REFERENCE_SIDE,
    landmark,
    landmarks_for,
    stem_stride_for,
)
from search_spaces._published import (
    PUBLISHED,
    PaperFigure,
    PublishedNetwork,
    published_names,
    published_network,
)
from search_spaces._spaces import (
    LATER_KNOB_DEFAULTS,
    SearchSpace,
    inception_to_xception,
    with_later_defaults,
    xception_spectrum,
)

__all__ = [
    "LANDMARKS",
    "LATER_KNOB_DEFAULTS",
    "PUBLISHED",
    "REFERENCE_SIDE",
    "PaperFigure",
    "PublishedNetwork",
    "SearchSpace",
    "get",
    "landmark",
    "landmarks_for",
    "names",
    "published_names",
    "published_network",
    "stem_stride_for",
    "with_later_defaults",
]

_FACTORIES = {
    "inception_to_xception": inception_to_xception,
    "xception_spectrum": xception_spectrum,
}


def names() -> list[str]:
    """Registered space names."""
    return list(_FACTORIES)


def get(name: str) -> SearchSpace:
    """The search space called `name`; ValueError lists the valid names."""
    if name not in _FACTORIES:
        raise ValueError(f"unknown search space {name!r}: choose from {', '.join(names())}")
    return _FACTORIES[name]()
