"""Kept trials: what a finished trial leaves in `results/<study>/trials/<number>/`, and in the artifact store.

Each completed trial among the best `keep` by validation accuracy (`record.validation_order`: test
accuracy never chooses a model) writes its best epoch's weights (`model.weights.h5`) and a
`trial.json` with its concrete config and figures, so export and predict never retrain: they rebuild
the model from the config with `models.build` and load the weights. A trial folder appears whole or
not at all. With `--artifacts LOCATION` (a folder, which may be a shared one, or `s3://BUCKET`) the
two files also go to an Optuna artifact store, recorded on the trial (optuna-dashboard lists them),
and a trial the folder drops leaves the store too. `Lookup` is how export and report find a kept
trial: in this results folder, else fetched from the store into it.
"""

from __future__ import annotations

import contextlib
import errno
import importlib.util
import json
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from search.errors import InputError, one_line
from search.files import check_writable
from search.study import record as trial_record
from search.study import storage
from search.study.record import Attr, StudyAttr, validation_order

if TYPE_CHECKING:
    import optuna

TRIALS = "trials"
WEIGHTS = "model.weights.h5"
RECORD = "trial.json"
STORED = "artifact_ids.json"  # {file name: artifact id} of the folder's files in the artifact store
STALE_SECONDS = 3600
SCHEMES = ("s3",)

# The engine's side of a keep: upload these files to the store as the running trial's artifacts and
# record their ids on it (lifecycle.Reporter.attach); returns the ids by file name.
Attach = Callable[["Store", list[Path]], dict[str, str]]


def trial_dir(study_dir: Path, number: int) -> Path:
    return study_dir / TRIALS / f"{number:05d}"


@contextlib.contextmanager
def staged(final: Path) -> Iterator[Path]:
    """A hidden sibling folder to write into; it replaces `final` whole on success, vanishes on error."""
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
    try:
        yield staging
        if final.exists():
            shutil.rmtree(final)
        staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def save(study_dir: Path, number: int, model: Any, record: dict[str, Any]) -> Path:
    """Write one trial's weights and record atomically; returns its folder."""
    return save_weights(trial_dir(study_dir, number), model, record)


def save_weights(folder: Path, model: Any, record: dict[str, Any], store: Store | None = None,
                 attach: Attach | None = None) -> Path:
    """A model's weights and a record holding the config that rebuilds it (`load_model`), written into
    `folder` whole or not at all, and given a `store`, uploaded there through `attach` first; returns the
    folder."""
    with staged(folder) as staging:
        _check_room(staging, model)
        model.save_weights(staging / WEIGHTS)
        (staging / RECORD).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        if store is not None and attach is not None:
            ids = attach(store, [staging / WEIGHTS, staging / RECORD])
            (staging / STORED).write_text(json.dumps(ids, indent=2, sort_keys=True) + "\n")
    return folder


# Beyond the weights' own bytes, an .h5 file's structure and the trial's record (a few KB for small models).
ROOM_MARGIN = 256 * 1024


def _check_room(folder: Path, model: Any) -> None:
    """Refuse, as the disk would (ENOSPC), to write weights that will not fit: HDF5 cut short by a full disk
    can crash the process later, when the library frees the file, so it is not asked to try."""
    needed = int(model.count_params() * 4 * 1.25) + ROOM_MARGIN  # float32 weights, kept as they are trained
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise OSError(errno.ENOSPC, f"No space left on device: {free:,} bytes free in {folder.parent}, the weights "
                                    f"need about {needed:,}")


def keep_trial(study_dir: Path, keep: int, number: int, study: str, result: Any, config: dict[str, Any],
               seed: int, test_accuracy: float | None, data: Any, command: str, store: Store | None = None,
               attach: Attach | None = None, **extra: Any) -> None:
    """Keep a finished trial (its `train.FitResult`) with the record `export` and `predict` read, in the
    results folder and the artifact store, then drop all but the best `keep`. A trial that would be
    dropped at once is not written at all. Both engines keep trials through here."""
    record = {"trial": number, "study": study, "config": config, "seed": seed,
              "val_accuracy": result.val_accuracy, "test_accuracy": test_accuracy,
              "best_epoch": result.best_epoch, "epochs": result.epochs_run,
              "n_params": int(result.model.count_params()), "dataset": data.name,
              "data_checksum": data.checksum, "run_command": command, **extra}
    ranked = kept(study_dir)
    if len(ranked) >= keep and _order(record) > _order(ranked[keep - 1]):
        return
    save_weights(trial_dir(study_dir, number), result.model, record, store, attach)
    prune(study_dir, keep, store)


def _order(record: dict[str, Any]) -> tuple[Any, ...]:
    return validation_order(record["val_accuracy"], record.get("n_params"), record["trial"])


def kept(study_dir: Path) -> list[dict[str, Any]]:
    """Records of the kept trials in this results folder, best validation accuracy first (then fewer
    parameters, earlier trial)."""
    records = []
    for record in (study_dir / TRIALS).glob(f"*/{RECORD}"):
        with contextlib.suppress(FileNotFoundError):  # dropped by another worker meanwhile
            records.append(_read(record.parent))
    return sorted(records, key=_order)


def _read(folder: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((folder / RECORD).read_text())
    data["path"] = str(folder)
    return data


def kept_or_refuse(study_dir: Path) -> list[dict[str, Any]]:
    """`kept`, refusing a study that has none in one line."""
    records = kept(study_dir)
    if not records:
        raise InputError(f"{study_dir}: no kept trials to export (a search keeps the best --keep-top trials)")
    return records


def prune(study_dir: Path, keep: int, store: Store | None = None) -> None:
    """Delete all but the best `keep` kept trials, from the artifact store as well (and leftovers of
    interrupted writes)."""
    for record in kept(study_dir)[keep:]:
        if store is not None:  # the store first: a folder left behind is dropped again next time
            store.remove(Path(record["path"]))
        shutil.rmtree(record["path"], ignore_errors=True)
    for leftover in (study_dir / TRIALS).glob(".*-*"):
        # Only old ones: a fresh one may be another worker's write in progress.
        with contextlib.suppress(FileNotFoundError):
            if time.time() - leftover.stat().st_mtime > STALE_SECONDS:
                shutil.rmtree(leftover, ignore_errors=True)


def load_model(folder: Path) -> tuple[Any, dict[str, Any]]:
    """Rebuild a kept trial's model from its config and load its weights."""
    from search.training import models

    record = json.loads((folder / RECORD).read_text())
    model = models.build(record["config"])
    model.load_weights(folder / WEIGHTS)
    return model, record


def check_location(location: str, flag: str = "--artifacts", writing: bool = True) -> str:
    """`--artifacts LOCATION` checked before anything is written: a folder that is one or can be made
    and may be written (to read from: one that is there), or `s3://BUCKET` with boto3 installed.
    Returns it as it is stored: a folder as an absolute path, the same on every machine that mounts
    the share there."""
    scheme, found, rest = location.partition("://")
    if found:
        if scheme not in SCHEMES:
            raise InputError(f"{flag} {location}: unknown scheme {scheme!r}; give a folder or s3://BUCKET")
        if not rest or "/" in rest.rstrip("/"):
            raise InputError(f"{flag} {location}: give a bucket, s3://BUCKET (Optuna's Boto3ArtifactStore "
                             "keeps its files at the bucket's top)")
        if importlib.util.find_spec("boto3") is None:
            raise InputError(f"{flag} {location}: needs boto3: pip install -e '.[s3]'")
        return f"s3://{rest.rstrip('/')}"
    if writing:
        return str(check_writable(location, flag))
    folder = Path(location).absolute()
    if not folder.is_dir():
        raise InputError(f"{flag} {location}: " + ("not a folder" if folder.exists() else "no such folder"))
    return str(folder)


@dataclass(frozen=True)
class Store:
    """An Optuna artifact store that kept trials also go to: `location` as `check_location` returns it."""

    location: str
    flag: str = "--artifacts"

    @cached_property
    def backend(self) -> Any:
        """The Optuna artifact store itself, made when first used."""
        from optuna.artifacts import Backoff, Boto3ArtifactStore, FileSystemArtifactStore

        if not self.location.startswith("s3://"):
            return FileSystemArtifactStore(self.location)
        if importlib.util.find_spec("boto3") is None:
            raise InputError(f"{self.flag} {self.location}: needs boto3: pip install -e '.[s3]'")
        return Backoff(Boto3ArtifactStore(self.location.removeprefix("s3://")))  # retries what S3 drops

    def upload(self, trial: optuna.Trial, files: list[Path]) -> dict[str, str]:
        """Put `files` in the store as the running trial's artifacts (Optuna records each on the trial);
        their ids by file name."""
        from optuna.artifacts import upload_artifact

        if not self.location.startswith("s3://"):
            Path(self.location).mkdir(parents=True, exist_ok=True)
        return {file.name: upload_artifact(artifact_store=self.backend, file_path=str(file), study_or_trial=trial)
                for file in files}

    def remove(self, folder: Path) -> None:
        """Delete the store's copies of a kept trial folder's files (its STORED ids), if it has any."""
        from optuna.artifacts.exceptions import ArtifactNotFound

        try:
            ids = json.loads((folder / STORED).read_text())
        except (FileNotFoundError, ValueError):
            return
        for artifact_id in ids.values():
            with contextlib.suppress(ArtifactNotFound):  # another machine that kept the trial removed it first
                self.backend.remove(artifact_id)

    def fetch(self, ids: dict[str, str], folder: Path) -> bool:
        """Download a kept trial's files by their ids into `folder`, whole or not at all; whether the store
        had them."""
        from optuna.artifacts import download_artifact
        from optuna.artifacts.exceptions import ArtifactNotFound

        if not {WEIGHTS, RECORD} <= ids.keys():
            return False
        try:
            with staged(folder) as staging:
                for name in (WEIGHTS, RECORD):
                    download_artifact(artifact_store=self.backend, artifact_id=ids[name], file_path=str(staging / name))
                (staging / STORED).write_text(json.dumps(ids, indent=2, sort_keys=True) + "\n")
        except ArtifactNotFound:  # dropped from the store: the study no longer keeps it
            return False
        except Exception as err:  # a file system's OSError, S3's ClientError after Backoff's retries
            raise InputError(f"{self.flag} {self.location}: cannot fetch {folder.name}: {one_line(err)}") from err
        return True


def store_for(study: optuna.Study, given: str | None) -> Store | None:
    """The store export and report look in: `given` (--artifacts: this machine's way to it), else the
    one the search recorded on the study, else none. The recorded one is not checked here: a trial kept
    in this results folder needs no store, and a store out of reach is named where a trial is missing."""
    if given is not None:
        return Store(check_location(given, writing=False))
    recorded = (study.user_attrs.get(StudyAttr.SETTINGS) or {}).get("artifacts")
    return Store(recorded, "--artifacts (recorded on the study)") if recorded else None


@dataclass(frozen=True)
class Lookup:
    """Where export and report find kept trials: this results folder, then the artifact store, whose copy
    of a trial is fetched into the folder the first time it is needed. The folder is then claimed for the
    study's `storage` (storage.claim_folder), as a search claims it: its trial numbers are that study's."""

    study_dir: Path
    study: optuna.Study | None = None
    store: Store | None = None
    storage: str | None = None

    def find(self, number: int) -> dict[str, Any] | None:
        """Trial `number`'s kept record (its folder under "path"), or None when neither place has it."""
        folder = trial_dir(self.study_dir, number)
        if (folder / RECORD).is_file():
            return _read(folder)
        if self.store is None or self.study is None:
            return None
        trials = self.study.get_trials(deepcopy=False)
        ids = trials[number].user_attrs.get(Attr.ARTIFACTS) if 0 <= number < len(trials) else None
        if not ids:
            return None
        if self.storage is not None:
            storage.claim_folder(self.study_dir, self.storage)
        return _read(folder) if self.store.fetch(ids, folder) else None

    def ranked(self) -> Iterator[dict[str, Any]]:
        """Every kept record, here or in the store, best validation accuracy first; one in the store only is
        fetched when the iteration reaches it."""
        here = {r["trial"]: r for r in kept(self.study_dir)}
        candidates = [_order(r) for r in here.values()]
        if self.store is not None and self.study is not None:
            for trial in self.study.get_trials(deepcopy=False):
                row = trial_record.read(trial)
                if trial.number not in here and trial.user_attrs.get(Attr.ARTIFACTS) and row.state == "complete":
                    candidates.append(validation_order(row.val_accuracy, row.n_params, trial.number))
        for key in sorted(candidates):
            number = int(key[-1])
            found = here.get(number) or self.find(number)
            if found is not None:
                yield found

    def where(self) -> str:
        """Where it looked, for a message: "in FOLDER" and the store, if any."""
        return f"in {self.study_dir}" + (f" nor in the artifact store {self.store.location}" if self.store else "")
