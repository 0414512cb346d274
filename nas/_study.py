"""Setting a study up safely: once, however many processes start on it, whoever of them dies.

Opening the storage itself (checks, SQLite settings, read-only access) is `nas.storage`'s.

The set-up (the study's settings, then the landmarks, enqueued in order) is guarded by a study
system attribute, `SETUP_KEY`: "done" when it is complete; while it is not, the host and process
id of the process doing it. That owner is claimed atomically, with one INSERT (there is one row
per study and key) or one compare-and-swap UPDATE, so exactly one process sets a study up and
the others wait for "done". A process that sees the owner dead (gone from this machine, or no
progress for `STALLED_S`) claims the set-up in its place and finishes what is missing: settings
not yet stored, landmarks not yet enqueued. A process id says nothing on another machine, and a
wall-clock heartbeat would trust the machines' clocks to agree; watching for progress needs
neither.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import warnings

import optuna
from optuna.storages import RDBStorage

from nas._data_choice import data_mismatch
from nas._faults import fault_point
from nas._optuna import (
    check_optuna_internals,
    enqueued_params,
    metric_names_key,
    study_id,
    study_system_attr_json,
    swap_study_system_attr_json,
)
from nas._report import fit_width
from nas._settings import metric_names
from nas._sqlite import process_alive
from nas.storage import StorageError

SETUP_KEY = "nas:setup"
DONE = "done"
# Older versions of this tool wrote this while setting up; it names no process.
LEGACY_IN_PROGRESS = "in progress"
# A study with neither the mark nor anything in it may be a moment old, its creator about to
# mark it: the others give it this long before they set it up themselves.
UNMARKED_GRACE_S = 3.0
# A set-up that shows no progress (mark, settings, trials) for this long is taken for dead;
# each step takes one write, a fraction of a second even on a remote database.
STALLED_S = 20.0
POLL_S = 0.2
COMPATIBLE_KEYS = ("space", "objectives")  # and the data: `nas._data_choice.data_mismatch`


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
    stalled_s: float = STALLED_S,
) -> tuple[optuna.Study, bool]:
    """The study `name`, created and set up if absent; True when this call stored its settings.

    Safe when several processes start on the same new study at once, and when the one setting
    it up dies: see the module's docstring. Landmarks (params, trial user attrs) are enqueued
    once each, in order, before any process runs a trial. The set-up names the objectives
    (`Study.set_metric_names`) after the stored "objectives"; a study set up before names were
    given gets them here, once, the first time a run continues it.

    Args:
        storage: the search's storage (`nas.storage.open_storage`).
        name: the study's name.
        directions: its directions, for a new study.
        user_attrs: its settings, stored by the set-up.
        landmarks: (params, trial user attrs) to enqueue first.
        stalled_s: how long a set-up may show no progress before another process finishes it.

    Raises:
        StorageError: an unfinished set-up was begun with another space, dataset or objectives.
        OptunaMismatch: the installed Optuna lacks an internal this tool relies on.
    """
    check_optuna_internals(storage)  # before anything is created
    study = existing_study(storage, name)
    created = False
    if study is None:
        try:
            study = optuna.create_study(study_name=name, storage=storage, directions=directions)
            created = True
        except optuna.exceptions.DuplicatedStudyError:
            study = optuna.load_study(study_name=name, storage=storage)
        else:
            fault_point("setup:study-created")
    set_up = _SetUp(storage, study, user_attrs, landmarks)
    stored = set_up.settle(created, stalled_s)
    _name_objectives_once(storage, study)
    return study, stored


def _names_for(study: optuna.Study, attrs: dict) -> list[str] | None:
    """The metric names of our stored objectives, when they fit the study's directions."""
    names = metric_names(attrs.get("objectives") or ())
    return names if names is not None and len(names) == len(study.directions) else None


def _name_objectives_once(storage: RDBStorage, study: optuna.Study) -> None:
    """Give a study of ours that has no metric names its names (one that an older version set
    up). One atomic insert: of processes continuing it at once, one writes, the others see it
    written; a study with names, or whose objectives are not ours, is left as it is."""
    if study.metric_names is not None:
        return
    names = _names_for(study, study.user_attrs)
    if names is not None:
        swap_study_system_attr_json(
            storage, study_id(study), metric_names_key(), None, json.dumps(names)
        )


class _SetUp:
    """One process's part in a study's set-up: do it, finish it, or wait for it."""

    def __init__(
        self,
        storage: RDBStorage,
        study: optuna.Study,
        user_attrs: dict,
        landmarks: list[tuple[dict, dict]],
    ) -> None:
        self.storage, self.study, self.study_id = storage, study, study_id(study)
        self.user_attrs, self.landmarks = user_attrs, landmarks
        self.me = json.dumps({"host": socket.gethostname(), "pid": os.getpid()})

    def settle(self, created: bool, stalled_s: float) -> bool:
        """Return once the set-up is done; True when this process stored all the settings."""
        start = last_change = time.monotonic()
        seen, told = None, False
        while True:
            mark = self._mark()
            now = time.monotonic()
            if mark is not None and json.loads(mark) == DONE:
                return False
            if mark is None:
                if self._attrs() or self._trials():
                    return False  # set up by an older version of this tool, or by other tools
                if (created or now - start > UNMARKED_GRACE_S) and self._claim(None):
                    return self._set_up(fresh=True)
            else:
                progress = (mark, len(self._attrs()), len(self._trials()))
                if progress != seen:
                    seen, last_change = progress, now
                if _abandoned(json.loads(mark), now - last_change, stalled_s) and self._claim(
                    mark
                ):
                    note = (
                        f"note: finishing the set-up of study {self.study.study_name!r}, which "
                        "the process that began it left unfinished"
                    )
                    print(fit_width(note), file=sys.stderr)
                    return self._set_up(fresh=False)
            if mark is not None and not told and now - start > UNMARKED_GRACE_S:
                told = True
                note = (
                    f"note: waiting while another process sets up study "
                    f"{self.study.study_name!r} (up to {stalled_s:.0f} s without progress)"
                )
                print(fit_width(note), file=sys.stderr)
            time.sleep(POLL_S)

    def _set_up(self, *, fresh: bool) -> bool:
        """Store the settings and enqueue the landmarks that are missing, then mark it done."""
        stored = self._attrs()
        _refuse_incompatible(self.study.study_name, stored, self.user_attrs)
        for key, value in self.user_attrs.items():
            if key not in stored:
                self.study.set_user_attr(key, value)
        names = _names_for(self.study, {**self.user_attrs, **stored})
        if names is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # set_metric_names is "experimental"
                self.study.set_metric_names(names)  # the same names again after a takeover
        fault_point("setup:attrs-stored")
        # A waiting trial keeps its enqueued params among its system attributes.
        enqueued = {
            _landmark_key(enqueued_params(t) or t.params, t.user_attrs) for t in self._trials()
        }
        for params, attrs in self.landmarks:
            if _landmark_key(params, attrs) in enqueued:
                continue
            if self._mark() != self.me:
                return self.settle(False, STALLED_S)  # taken for dead: let the other finish
            self.study.enqueue_trial(params, user_attrs=attrs)
            fault_point("setup:landmark-enqueued")
        self.storage.set_study_system_attr(self.study_id, SETUP_KEY, DONE)
        return fresh

    def _attrs(self) -> dict:
        return self.storage.get_study_user_attrs(self.study_id)

    def _trials(self) -> list:
        return self.storage.get_all_trials(self.study_id, deepcopy=False)

    def _mark(self) -> str | None:
        """The set-up mark as stored (JSON text), read straight from Optuna's table."""
        return study_system_attr_json(self.storage, self.study_id, SETUP_KEY)

    def _claim(self, seen: str | None) -> bool:
        """Make this process the set-up's owner if the mark is still `seen`; True if it is.

        One statement, so two processes can never both win (`swap_study_system_attr_json`).
        """
        return swap_study_system_attr_json(self.storage, self.study_id, SETUP_KEY, seen, self.me)


def _abandoned(owner, unchanged_s: float, stalled_s: float) -> bool:
    """Whether the set-up that `owner` (the mark's value) is doing can be taken for dead."""
    if unchanged_s > stalled_s:
        return True
    if not isinstance(owner, dict) or owner.get("host") != socket.gethostname():
        return False  # another machine's process (or an older version's mark): wait and watch
    return not process_alive(int(owner.get("pid", 0)))


def _landmark_key(params: dict, attrs: dict) -> str:
    return attrs.get("landmark") or json.dumps(params, sort_keys=True)


def _refuse_incompatible(study_name: str, stored: dict, wanted: dict) -> None:
    mismatch = data_mismatch(study_name, stored, wanted)
    if mismatch is not None:
        raise StorageError(mismatch)
    for key in COMPATIBLE_KEYS:
        if key in stored and key in wanted and stored[key] != wanted[key]:
            raise StorageError(
                f"study {study_name!r} was run with {key}={stored[key]!r}, not "
                f"{wanted[key]!r}: give another --study name or the same {key}"
            )


def check_compatible(study: optuna.Study, wanted: dict) -> None:
    """Refuse to continue a study that was started with another space, data or objectives."""
    _refuse_incompatible(study.study_name, study.user_attrs, wanted)
