"""Kept trials on disk: what a finished trial leaves in `results/<study>/trials/<number>/`.

Each completed trial writes its best epoch's weights (`model.weights.h5`) and a `trial.json` with
its concrete config and figures, so export and predict never retrain: they rebuild the model from
the config with `models.build` and load the weights. Only the best `keep` trials by validation
accuracy stay on disk (`record.validation_order`: test accuracy never chooses a model); a trial
folder appears whole or not at all.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from search.errors import InputError
from search.study.record import validation_order

TRIALS = "trials"
WEIGHTS = "model.weights.h5"
RECORD = "trial.json"
STALE_SECONDS = 3600


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


def save_weights(folder: Path, model: Any, record: dict[str, Any]) -> Path:
    """A model's weights and a record holding the config that rebuilds it (`load_model`), written into
    `folder` whole or not at all; returns the folder."""
    with staged(folder) as staging:
        model.save_weights(staging / WEIGHTS)
        (staging / RECORD).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return folder


def keep_trial(study_dir: Path, keep: int, number: int, study: str, result: Any, config: dict[str, Any],
               seed: int, test_accuracy: float | None, data: Any, command: str, **extra: Any) -> None:
    """Keep a finished trial (its `train.FitResult`) with the record `export` and `predict` read, then
    drop all but the best `keep`. Both engines keep trials through here."""
    record = {"trial": number, "study": study, "config": config, "seed": seed,
              "val_accuracy": result.val_accuracy, "test_accuracy": test_accuracy,
              "best_epoch": result.best_epoch, "epochs": result.epochs_run,
              "n_params": int(result.model.count_params()), "dataset": data.name,
              "data_checksum": data.checksum, "run_command": command, **extra}
    save(study_dir, number, result.model, record)
    prune(study_dir, keep)


def kept(study_dir: Path) -> list[dict[str, Any]]:
    """Records of the kept trials, best validation accuracy first (then fewer parameters, earlier trial)."""
    records = []
    for record in (study_dir / TRIALS).glob(f"*/{RECORD}"):
        data = json.loads(record.read_text())
        data["path"] = str(record.parent)
        records.append(data)
    return sorted(records, key=lambda r: validation_order(r["val_accuracy"], r.get("n_params"), r["trial"]))


def kept_or_refuse(study_dir: Path) -> list[dict[str, Any]]:
    """`kept`, refusing a study that has none in one line."""
    records = kept(study_dir)
    if not records:
        raise InputError(f"{study_dir}: no kept trials to export (a search keeps the best --keep-top trials)")
    return records


def prune(study_dir: Path, keep: int) -> None:
    """Delete all but the best `keep` kept trials (and leftovers of interrupted writes)."""
    for record in kept(study_dir)[keep:]:
        shutil.rmtree(record["path"], ignore_errors=True)
    for leftover in (study_dir / TRIALS).glob(".*-*"):
        # Only old ones: a fresh one may be another worker's write in progress.
        if time.time() - leftover.stat().st_mtime > STALE_SECONDS:
            shutil.rmtree(leftover, ignore_errors=True)


def load_model(folder: Path) -> tuple[Any, dict[str, Any]]:
    """Rebuild a kept trial's model from its config and load its weights."""
    from search.training import models

    record = json.loads((folder / RECORD).read_text())
    model = models.build(record["config"])
    model.load_weights(folder / WEIGHTS)
    return model, record
