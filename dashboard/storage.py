"""The app's handle on its storage: the storage's status, its studies, and what was read.

Checking and opening are `nas.storage`'s (one rule for what an Optuna storage is, read-only
opening); this module keeps what the app has read, so polling an unchanged storage is cheap.
"""

from __future__ import annotations

import logging
import threading
import warnings
from typing import NamedTuple

import optuna
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial

from nas._optuna import metric_names_of
from nas._settings import OBJECTIVE_LABELS
from nas.record import DEFAULT_OBJECTIVES
from nas.storage import (
    INVALID,
    MISSING,
    OK,
    StorageError,
    StorageStatus,
    check_storage,
    open_read_only,
    sqlite_path,
)


class StudyInfo(NamedTuple):
    """A study's name, directions, objectives and user attributes; any Optuna study's.

    `objectives` are the stored names of a study of ours ("val_acc", "macs", ...), empty for
    a study that `nas.search` did not make; `metric_names` are what `Study.set_metric_names`
    stored, if anything.
    """

    name: str
    directions: tuple[str, ...]
    objectives: tuple[str, ...]
    attrs: dict
    metric_names: tuple[str, ...] | None = None

    @property
    def ours(self) -> bool:
        """Made by `nas.search` (it stores the space): accuracy, costs and architectures."""
        return "space" in self.attrs

    @property
    def labels(self) -> tuple[str, ...]:
        """One label per objective: its metric name, else our name for it, else Optuna's
        'objective <index>'."""
        if self.metric_names is not None and len(self.metric_names) == len(self.directions):
            return tuple(str(name) for name in self.metric_names)
        ours = OBJECTIVE_LABELS if self.ours else {}
        objectives = self.objectives if self.ours else ()
        return tuple(
            ours.get(objectives[index], objectives[index])
            if index < len(objectives)
            else f"objective {index}"
            for index in range(len(self.directions))
        )


def _study_info(frozen) -> StudyInfo:
    directions = tuple(direction.name.lower() for direction in frozen.directions)
    attrs = dict(frozen.user_attrs)
    objectives: tuple[str, ...] = ()
    if "space" in attrs:  # ours: a study of an older version may not store its objectives
        objectives = tuple(attrs.get("objectives") or DEFAULT_OBJECTIVES)[: len(directions)]
    names = metric_names_of(frozen)
    names = tuple(names) if isinstance(names, (list, tuple)) else None
    return StudyInfo(frozen.study_name, directions, objectives, attrs, names)


class StorageReader:
    """The app's one handle on the storage: status, studies, and trials read incrementally.

    Trials come through Optuna's cached storage (what `optuna.load_study` gives), which re-reads
    only unfinished and new trials, so polling an unchanged study of thousands costs one query.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._lock = threading.Lock()
        self._storage: RDBStorage | None = None
        self._studies: dict[str, optuna.Study] = {}
        self._status = StorageStatus(MISSING, "not checked yet")
        self._file_stamp: tuple | None = None

    def _stamp(self) -> tuple | None:
        try:
            path = sqlite_path(self.url)
        except StorageError:
            return None
        if path is None or not path.exists():
            return None
        stat = path.stat()
        return (stat.st_ino, stat.st_size > 0)

    def status(self) -> StorageStatus:
        """The storage's status, re-checked unless it was fine and its file is the same one."""
        with self._lock:
            stamp = self._stamp()
            if self._status.kind == OK and stamp == self._file_stamp:
                return self._status
            self._status = check_storage(self.url)
            self._file_stamp = self._stamp()
            self._studies.clear()
            if self._storage is not None:
                self._storage.engine.dispose()
                self._storage = None
            if self._status.kind == OK:
                # The page shows what matters; Optuna's and Alembic's notes would only be noise.
                optuna.logging.set_verbosity(optuna.logging.WARNING)
                logging.getLogger("alembic").setLevel(logging.WARNING)
                try:
                    self._storage = open_read_only(self.url)
                except StorageError as error:
                    self._status = StorageStatus(INVALID, str(error))
            return self._status

    def studies(self) -> list[StudyInfo]:
        """Every study in the storage, oldest first (an empty list unless the status is ok)."""
        if self.status().kind != OK or self._storage is None:
            return []
        return [_study_info(frozen) for frozen in self._storage.get_all_studies()]

    def study(self, name: str) -> optuna.Study:
        """The Optuna study `name` (KeyError if the storage has none of that name)."""
        if self._storage is None:
            self.status()
        with self._lock:
            if name not in self._studies:
                if self._storage is None:
                    raise KeyError(name)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    self._studies[name] = optuna.load_study(study_name=name, storage=self._storage)
            return self._studies[name]

    def trials(self, name: str) -> list[FrozenTrial]:
        """All trials of study `name`, in number order; the same objects while unchanged."""
        try:
            return self.study(name).get_trials(deepcopy=False)
        except KeyError:
            # The study was deleted (and maybe created again under its name): start afresh.
            with self._lock:
                self._studies.pop(name, None)
            return self.study(name).get_trials(deepcopy=False)

    def close(self) -> None:
        with self._lock:
            if self._storage is not None:
                self._storage.engine.dispose()
            self._storage = None
            self._studies.clear()
