"""Setting a study up safely: create it once, however many processes start on it at once.

Opening the storage itself (checks, SQLite settings, read-only access) is `nas.storage`'s.
"""

from __future__ import annotations

import time

import optuna
from optuna.storages import RDBStorage

from nas.storage import StorageError

# A study system attribute: "in progress" while the process that created the study stores its
# settings and enqueues the landmarks, "done" after; processes that lost the race to create it
# wait for "done" so that they neither run before the landmarks nor enqueue them again.
SETUP_KEY = "nas:setup"
SETUP_WAIT_S = 60.0


def existing_study(storage: RDBStorage, name: str) -> optuna.Study | None:
    """The study called `name`, or None when the storage has none by that name."""
    try:
        storage.get_study_id_from_name(name)
    except KeyError:
        return None
    return optuna.load_study(study_name=name, storage=storage)


def open_or_create_study(
    storage: RDBStorage,
    name: str,
    directions: list[str],
    user_attrs: dict,
    landmarks: list[tuple[dict, dict]],
    *,
    wait_s: float = SETUP_WAIT_S,
) -> tuple[optuna.Study, bool]:
    """The study `name`, created if absent; True when this call created it.

    Safe when several processes start on the same new study at once: exactly one creates it,
    stores `user_attrs` and enqueues `landmarks` (params, trial user attrs) in order; the
    others load it and wait until that set-up is done, so landmarks are enqueued once and run
    first.
    """
    study = existing_study(storage, name)
    if study is None:
        try:
            study = optuna.create_study(study_name=name, storage=storage, directions=directions)
        except optuna.exceptions.DuplicatedStudyError:
            study = optuna.load_study(study_name=name, storage=storage)
        else:
            _set_up(study, user_attrs, landmarks)
            return study, True
    _wait_for_set_up(study, wait_s)
    return study, False


def _set_up(study: optuna.Study, user_attrs: dict, landmarks: list[tuple[dict, dict]]) -> None:
    storage, study_id = study._storage, study._study_id
    storage.set_study_system_attr(study_id, SETUP_KEY, "in progress")
    for key, value in user_attrs.items():
        study.set_user_attr(key, value)
    for params, attrs in landmarks:
        study.enqueue_trial(params, user_attrs=attrs)
    storage.set_study_system_attr(study_id, SETUP_KEY, "done")


def _wait_for_set_up(study: optuna.Study, wait_s: float) -> None:
    """Wait while another process is still setting the study up.

    A study with neither our set-up mark nor any user attribute may be a second old (its
    creator has not written the mark yet) or made by other tools: wait briefly for it. A
    creator that died half-way leaves "in progress": go on after `wait_s`.
    """
    storage, study_id = study._storage, study._study_id
    start = time.monotonic()
    while True:
        mark = storage.get_study_system_attrs(study_id).get(SETUP_KEY)
        if mark == "done":
            return
        elapsed = time.monotonic() - start
        if mark is None and (storage.get_study_user_attrs(study_id) or elapsed > 3.0):
            return  # made by an older version of this tool or by other tools
        if elapsed > wait_s:
            return
        time.sleep(0.2)


def check_compatible(study: optuna.Study, wanted: dict) -> None:
    """Refuse to continue a study that was started with another space, dataset or objectives."""
    stored = study.user_attrs
    for key in ("space", "dataset", "objectives"):
        if key in stored and stored[key] != wanted[key]:
            raise StorageError(
                f"study {study.study_name!r} was run with {key}={stored[key]!r}, not "
                f"{wanted[key]!r}: give another --study name or the same {key}"
            )
