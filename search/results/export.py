"""Export one kept trial for serving: the last stage (kept weights -> .keras, SavedModel, TFLite, card).

`export` rebuilds a kept trial's model from its config and weights (it never retrains), loads the
data set the trial ran on, checks its checksum against the trial's, measures test accuracy again
and goes on only if it equals the accuracy the trial recorded: otherwise the weights on disk are not
the ones that were scored. It then writes the model as `model.keras`, as a TensorFlow SavedModel
whose `serving_default` signature maps `images` (uint8, [None, 28, 28]) to `probabilities`
(float32, [None, 10]), and as `model.tflite` converted from that SavedModel, beside a model card in
JSON and Markdown. Scaling is the model's first layer, so no format needs preprocessing code. Files
are written in a hidden sibling folder that is renamed at the end: a failed export leaves nothing.

    python -m search export mlp --trial 12 --out exported/mlp-12
"""

from __future__ import annotations

import itertools
import json
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import keras
import numpy as np
import optuna
import tensorflow as tf

from search.errors import DataError, InputError, one_line
from search.results import confirm, leaderboard
from search.serving.files import (
    BATCH,
    CARD_JSON,
    CARD_MARKDOWN,
    INPUT_NAME,
    KERAS_FILE,
    OUTPUT_NAME,
    SAVED_MODEL,
    SIGNATURE,
    TFLITE_FILE,
)
from search.serving.litert import load_tflite
from search.space import schema
from search.study import artifacts
from search.training import datasets, models, train


def export(study_dir: Path, trial: int | None = None, out: Path | None = None, command: str = "",
           study: optuna.Study | None = None, full_train: bool = False, ensemble: int | None = None,
           store: artifacts.Store | None = None, storage: str | None = None) -> Path:
    """Write one trial's model in every format, with its card; returns the folder. The trial is `trial`,
    else the confirmed winner when `confirm` has run on `study`, else the trial with the best
    validation accuracy (`confirm.study_model`). Its kept weights are the results folder's, else the
    artifact store's (`store`: fetched into the folder, claimed for the study's `storage`; see
    `artifacts.Lookup`). `full_train` trains its config again on all 60,000
    training images (the 5,000 validation images too), as KerasTuner's docs recommend for a final
    model, instead of exporting the kept weights; then `study` must be given. `ensemble` K exports one model averaging
    the probabilities of the K best kept trials instead (`export_ensemble`)."""
    kept = artifacts.Lookup(study_dir, study, store, storage)
    if ensemble is not None:
        if trial is not None or full_train:
            raise InputError(f"--ensemble {ensemble}: it takes the best kept trials itself; drop --trial and "
                             "--full-train")
        return export_ensemble(kept, ensemble, out, command)
    if trial is None:
        trial, name, chosen = confirm.study_model(study_dir, study)
        if not full_train and kept.find(trial) is None:
            raise InputError(f"trial {trial}, {name}, has no kept weights {kept.where()}"
                             f"{confirm.ran_elsewhere(study, trial)}; export it where its weights are, or here "
                             "with --full-train")
    else:
        chosen = f"trial {trial}, as asked (--trial)"
    if full_train and study is None:
        raise InputError("--full-train needs the study (its trials' records)")
    source = _source(study, trial) if full_train and study is not None else kept_record(kept, trial)
    out = out if out is not None else study_dir / "export" / (f"trial-{trial}" + ("-full" if full_train else ""))
    # Replacing an earlier export is fine; deleting a folder of someone's other files is not.
    if out.exists() and not (out.is_dir() and ((out / CARD_JSON).is_file() or not any(out.iterdir()))):
        raise InputError(f"--out {out}: exists and is not an export; give a new or empty folder")
    # Every check runs before the first file is written.
    dataset = datasets.load(source["dataset"])
    if dataset.checksum != source["data_checksum"]:
        raise DataError(f"trial {trial} ran on {source['dataset']} with checksum {source['data_checksum']}, "
                        f"this machine's copy has {dataset.checksum}")
    if full_train:
        model, trained_on = _train_full(source, dataset)
        test_accuracy = train.evaluate(model, dataset.test_images, dataset.test_labels)  # once, afterwards
    else:
        model, test_accuracy, trained_on = _kept(source, dataset), source["test_accuracy"], (
            f"the trial's own training: {len(dataset.train_labels):,} training images, its best epoch by validation")

    # An earlier export there (or an empty folder; checked above) is replaced whole.
    with artifacts.staged(out) as staging:
        write_formats(model, staging)
        tflite = tflite_accuracy(staging / TFLITE_FILE, dataset.test_images, dataset.test_labels)
        card = model_card(source, model, dataset, test_accuracy, tflite, staging, command)
        card.update({"chosen": chosen, "trained_on": trained_on,
                     **({"val_accuracy": None, "search_val_accuracy": source["val_accuracy"]} if full_train else {})})
        (staging / CARD_JSON).write_text(json.dumps(card, indent=2) + "\n")
        (staging / CARD_MARKDOWN).write_text(markdown(card))
    return out


def export_ensemble(kept: artifacts.Lookup, size: int, out: Path | None = None, command: str = "") -> Path:
    """One Keras model averaging the probabilities of `size` kept trials, in every format: the confirmed
    configurations in order of mean validation accuracy when `confirm` has run on the study, else the best
    kept trials by validation accuracy. Each member must score exactly its recorded test accuracy; the
    ensemble's own test accuracy is measured once, here, and put on the card beside its members'."""
    if size <= 0:
        raise InputError(f"--ensemble {size}: must be > 0")
    study_dir, study = kept.study_dir, kept.study
    found = confirm.summary(study) if study is not None else None
    order = [c.trial.number for c in found.candidates] if found is not None and found.winner.runs else []
    members = [r for r in map(kept.find, order) if r is not None]
    confirmed = bool(members)
    if not confirmed:  # the best kept trials, fetched from the store only as far as needed
        members = list(itertools.islice(kept.ranked(), size))
    if size > len(members):
        which = "of the confirmed configurations have kept weights" if confirmed else "kept trials to average"
        raise InputError(f"--ensemble {size}: only {len(members)} {which} (keep more with --keep-top)")
    members = members[:size]
    out = out if out is not None else study_dir / "export" / f"ensemble-{size}"
    if out.exists() and not (out.is_dir() and ((out / CARD_JSON).is_file() or not any(out.iterdir()))):
        raise InputError(f"--out {out}: exists and is not an export; give a new or empty folder")
    dataset = datasets.load(members[0]["dataset"])
    for member in members:
        if member["data_checksum"] != dataset.checksum:
            raise DataError(f"trial {member['trial']} ran on other data than this machine's {dataset.name}")
    model = models.ensemble([_kept(member, dataset) for member in members], [f"trial_{m['trial']}" for m in members])
    test_accuracy = train.evaluate(model, dataset.test_images, dataset.test_labels)  # once, afterwards
    names = ", ".join(str(m["trial"]) for m in members)
    source = {**members[0], "trial": f"ensemble of trials {names}", "baseline": None, "config": None, "seed": None,
              "best_epoch": None, "val_accuracy": None}
    with artifacts.staged(out) as staging:
        write_formats(model, staging)
        tflite = tflite_accuracy(staging / TFLITE_FILE, dataset.test_images, dataset.test_labels)
        card = model_card(source, model, dataset, test_accuracy, tflite, staging, command)
        card.update({
            "chosen": (f"the {size} confirmed configurations with the best mean validation accuracy" if order
                       else f"the {size} kept trials with the best validation accuracy"),
            "trained_on": "each member's own training; the ensemble averages their ten probabilities",
            "members": [{key: m.get(key) for key in ("trial", "baseline", "val_accuracy", "test_accuracy", "n_params")}
                        | {"model": leaderboard.describe(m["config"])} for m in members]})
        (staging / CARD_JSON).write_text(json.dumps(card, indent=2) + "\n")
        (staging / CARD_MARKDOWN).write_text(markdown(card))
    return out


def describe(out: Path) -> str:
    """What `export` wrote, from the card: the trial, its accuracy in each format, and the files."""
    card = json.loads((out / CARD_JSON).read_text())
    files = "".join(f"\n  {out / name}" for name in sorted(p.name for p in out.iterdir()))
    return (f"exported trial {card['trial']} of {card['study']} to {out}: test accuracy "
            f"{100 * card['test_accuracy']:.2f}% (.keras, SavedModel), {100 * card['tflite_test_accuracy']:.2f}% "
            f"(TFLite); {card['n_params']:,} parameters; chosen as {card['chosen']}{files}")


def _kept(record: dict[str, Any], dataset: datasets.Dataset) -> keras.Model:
    """A kept trial's model, checked: its weights must score exactly the test accuracy it recorded."""
    folder = Path(record["path"])
    try:
        model, _ = artifacts.load_model(folder)
    except Exception as err:  # a damaged h5 file raises OSError, a mismatched one ValueError
        raise InputError(f"{folder}: cannot rebuild the model from its kept files: {one_line(err)}") from err
    test_accuracy = train.evaluate(model, dataset.test_images, dataset.test_labels)
    if test_accuracy != record["test_accuracy"]:
        raise InputError(f"{folder}: the kept weights score test accuracy {test_accuracy} but the trial "
                         f"recorded {record['test_accuracy']}: weights and record do not match")
    return model


def _source(study: optuna.Study, number: int) -> dict[str, Any]:
    """What `--full-train` needs of a completed trial, from its stored record (kept or not)."""
    from search.study import record
    from search.study.record import Attr, StudyAttr

    trials = study.get_trials(deepcopy=False)
    if not 0 <= number < len(trials) or trials[number].state.name != "COMPLETE" or record.is_confirmation(
            trials[number]):
        raise InputError(f"--trial {number}: not a completed search trial of study {study.study_name!r}")
    row, attrs = record.read(trials[number]), trials[number].user_attrs
    settings = study.user_attrs.get(StudyAttr.SETTINGS) or {}
    return {"trial": number, "study": study.study_name, "baseline": row.baseline or None, "config": row.config,
            "seed": row.seed, "val_accuracy": row.val_accuracy, "best_epoch": attrs.get(Attr.BEST_EPOCH),
            "dataset": study.user_attrs[StudyAttr.DATASET],
            "data_checksum": study.user_attrs.get(StudyAttr.DATA_CHECKSUM), "run_command": settings.get("command")}


def _train_full(source: dict[str, Any], dataset: datasets.Dataset) -> tuple[keras.Model, str]:
    """The trial's config trained again with its seed on all 60,000 training images, for its best
    epoch's count of epochs (a config that counts steps keeps its steps); the last epoch's weights."""
    from search.training.runtime import training_precision

    config = dict(source["config"])
    if not config.get("steps") and source.get("best_epoch"):
        config["epochs"] = int(source["best_epoch"])
    full = datasets.with_validation(dataset)
    train.reset(int(source["seed"]))
    result = train.fit(train.training_model(config, training_precision()), config, full, last=True)
    span = f"{config['steps']:,} steps" if config.get("steps") else f"{config.get('epochs', 10)} epochs"
    return result.model, (f"all {len(full.train_labels):,} training images (the 5,000 validation images too), "
                          f"{span}, seed {source['seed']}: no held-out validation, so no validation accuracy")


def kept_record(kept: artifacts.Lookup, trial: int) -> dict[str, Any]:
    """The kept record of `trial`, here or in the artifact store."""
    found = kept.find(trial)
    if found is not None:
        return found
    if kept.store is None:
        here = artifacts.kept_or_refuse(kept.study_dir)
        numbers = ", ".join(str(r["trial"]) for r in here)
        raise InputError(f"--trial {trial}: not kept in {kept.study_dir} (pruned, failed or outside the best "
                         f"--keep-top); kept trials: {numbers}")
    raise InputError(f"--trial {trial}: not kept {kept.where()} (pruned, failed or outside the best --keep-top)")


def write_formats(model: keras.Model, folder: Path) -> None:
    """`model.keras`, `saved_model/` and `model.tflite`, all taking raw uint8 images."""
    keras.saving.save_model(model, folder / KERAS_FILE)
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        name=SIGNATURE,
        fn=lambda images: {OUTPUT_NAME: model(images, training=False)},
        input_signature=[tf.TensorSpec([None, models.IMAGE_SIZE, models.IMAGE_SIZE], tf.uint8, name=INPUT_NAME)],
    )
    archive.write_out(str(folder / SAVED_MODEL), verbose=False)
    converter = tf.lite.TFLiteConverter.from_saved_model(str(folder / SAVED_MODEL), signature_keys=[SIGNATURE])
    (folder / TFLITE_FILE).write_bytes(converter.convert())


def tflite_accuracy(path: Path, images: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy of a TFLite file through its serving signature, run by LiteRT as `predict` runs it."""
    model = load_tflite(path)
    predicted = [model(images[start : start + BATCH]).argmax(axis=1) for start in range(0, len(images), BATCH)]
    return float(np.mean(np.concatenate(predicted) == labels))


def model_card(record: dict[str, Any], model: keras.Model, dataset: datasets.Dataset, test_accuracy: float,
               tflite_test_accuracy: float, folder: Path, command: str) -> dict[str, Any]:
    """Everything needed to trust, cite and reproduce the exported model."""
    return {
        "study": record["study"],
        "trial": record["trial"],
        "baseline": record.get("baseline"),
        "config": schema.resolve(record["config"]) if record.get("config") else None,
        "val_accuracy": record["val_accuracy"],
        "test_accuracy": test_accuracy,
        "tflite_test_accuracy": tflite_test_accuracy,
        "n_params": int(model.count_params()),
        "seed": record["seed"],
        "best_epoch": record.get("best_epoch"),
        "dataset": {"name": dataset.name, "checksum": dataset.checksum, "test_images": len(dataset.test_labels)},
        "versions": {"python": platform.python_version(), "tensorflow": tf.__version__,
                     "keras": keras.__version__, "optuna": optuna.__version__, "numpy": np.__version__},
        "command": record.get("run_command") or "",  # the search that produced the model
        "export_command": command,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "signature": {"name": SIGNATURE, "input": f"{INPUT_NAME}: uint8 [None, 28, 28]",
                      "output": f"{OUTPUT_NAME}: float32 [None, 10]"},
        "files": {name: _size(folder / name) for name in (KERAS_FILE, SAVED_MODEL, TFLITE_FILE)},
    }


def markdown(card: dict[str, Any]) -> str:
    """The card for people: a summary table, the hyperparameters, the files and how to load them."""
    config, dataset, versions = card["config"] or {}, card["dataset"], card["versions"]
    baseline = f" (baseline {card['baseline']})" if card["baseline"] else ""
    members = card.get("members") or []
    rows = [
        ("model", f"`{leaderboard.describe(config)}`" if config else f"the average of {len(members)} models: "
         + "; ".join(f"trial {m['trial']} `{m['model']}` (val {m['val_accuracy']:.4f}, test {m['test_accuracy']:.4f})"
                     for m in members)),
        ("test accuracy", f"{card['test_accuracy']:.4f} ({dataset['test_images']:,} images; "
                          f"TFLite {card['tflite_test_accuracy']:.4f})"),
        ("validation accuracy", f"{card['val_accuracy']:.4f}" if card["val_accuracy"] is not None else
         f"none held out (trained on it too); in the search: {card['search_val_accuracy']:.4f}"
         if "search_val_accuracy" in card else "see each member"),
        ("chosen as", card.get("chosen", "")),
        ("trained on", card.get("trained_on", "")),
        ("parameters", f"{card['n_params']:,}"),
        ("seed", str(card["seed"]) if card["seed"] is not None else "each member's own"),
        ("data set", f"{datasets.TITLES.get(dataset['name'], dataset['name'])}, checksum `{dataset['checksum']}`"),
        ("command", f"`{card['command']}`" if card["command"] else "(not recorded)"),
        ("date", card["date"]),
        ("versions", ", ".join(f"{name} {version}" for name, version in versions.items())),
    ]
    what = card["trial"] if isinstance(card["trial"], str) else f"trial {card['trial']}"  # or "ensemble of ..."
    lines = [f"# {card['study']}, {what}{baseline}", "", "| | |", "|---|---|"]
    lines += [f"| {key} | {value} |" for key, value in rows]
    if config:
        lines += ["", "## Hyperparameters", "", "| key | value |", "|---|---|"]
        lines += [f"| {key} | `{json.dumps(value)}` |" for key, value in config.items()]
    lines += ["", "## Files", "", "| file | bytes |", "|---|---|"]
    lines += [f"| `{name}` | {size:,} |" for name, size in card["files"].items()]
    lines += ["", f"Each takes raw 28x28 uint8 images and returns ten class probabilities "
                  f"(SavedModel and TFLite signature `{SIGNATURE}`: `{INPUT_NAME}` -> `{OUTPUT_NAME}`).", "",
              "```python", f'keras.models.load_model("{KERAS_FILE}").predict(images)',
              f'tf.saved_model.load("{SAVED_MODEL}").signatures["{SIGNATURE}"]({INPUT_NAME}=images)["{OUTPUT_NAME}"]',
              f'ai_edge_litert.interpreter.Interpreter("{TFLITE_FILE}").get_signature_runner()({INPUT_NAME}=images)'
              f'["{OUTPUT_NAME}"]',
              "```", ""]
    return "\n".join(lines)


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(file.stat().st_size for file in path.rglob("*") if file.is_file())
    return path.stat().st_size
