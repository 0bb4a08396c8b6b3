"""Export of kept trials: every format reloads in a fresh process and scores the card's accuracy."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from search.errors import InputError
from search.results.export import export
from search.study import artifacts
from search.training import models, train

# Trial 3 learns, trial 5 barely does: the leaderboard's first row is trial 3 for certain.
TRIALS = {
    3: {"model": "mlp", "layers": [{"units": 32}], "learning_rate": 3e-3, "batch_size": 64, "epochs": 1},
    5: {"model": "softmax", "learning_rate": 1e-5, "batch_size": 256, "epochs": 1},
}
FILES = {"model.keras", "saved_model", "model.tflite", "model_card.json", "model_card.md"}
# Runs without `search` on the path: only Keras, TensorFlow and numpy, as a user of the files would.
RELOAD = """
import json, sys
import numpy as np, keras, tensorflow as tf
assert "search" not in sys.modules
folder, images, labels = sys.argv[1], np.load(sys.argv[2]), np.load(sys.argv[3])
def accuracy(batches):
    return float(np.mean(np.concatenate([b.argmax(axis=1) for b in batches]) == labels))
starts = range(0, len(images), 1000)
model = keras.models.load_model(f"{folder}/model.keras")
serve = tf.saved_model.load(f"{folder}/saved_model").signatures["serving_default"]
runner = tf.lite.Interpreter(model_path=f"{folder}/model.tflite").get_signature_runner("serving_default")
print(json.dumps({
    "keras": accuracy([model.predict(images, batch_size=1000, verbose=0)]),
    "saved_model": accuracy([serve(images=tf.constant(images[s:s + 1000]))["probabilities"].numpy() for s in starts]),
    "tflite": accuracy([runner(images=images[s:s + 1000])["probabilities"] for s in starts]),
    "saved_model_output": str(serve.structured_outputs["probabilities"].dtype),
}))
"""


def keep(study_dir: Path, number: int, config: dict[str, Any], data) -> None:
    """Train a trial for real and keep it as `Objective._keep` does."""
    train.reset(number)
    # Trial 3 trains in mixed bfloat16 (on any CPU): what it keeps must still export exactly.
    result = train.fit(models.build(config, "bfloat16" if number == 3 else "float32"), config, data)
    record = {"trial": number, "study": study_dir.name, "config": config, "seed": number,
              "val_accuracy": result.val_accuracy,
              "test_accuracy": train.evaluate(result.model, data.test_images, data.test_labels),
              "best_epoch": result.best_epoch, "epochs": result.epochs_run,
              "n_params": int(result.model.count_params()), "baseline": "tiny" if number == 3 else None,
              "dataset": data.name, "data_checksum": data.checksum}
    artifacts.save(study_dir, number, result.model, record)


@pytest.fixture(scope="module")
def study(tmp_path_factory, small_mnist) -> Path:
    study_dir = tmp_path_factory.mktemp("results") / "tiny"
    for number, config in TRIALS.items():
        keep(study_dir, number, config, small_mnist)
    assert [r["trial"] for r in artifacts.kept(study_dir)] == [3, 5]
    return study_dir


def test_every_format_reloads_in_a_fresh_process_with_the_cards_accuracy(study: Path, small_mnist,
                                                                        tmp_path: Path) -> None:
    weights = (study / "trials" / "00003" / "model.weights.h5").read_bytes()
    folder = export(study, command="python -m search export tiny")
    assert folder == study / "export" / "trial-3"  # the leaderboard's first row by default
    assert {path.name for path in folder.iterdir()} == FILES
    card = json.loads((folder / "model_card.json").read_text())
    record = json.loads((study / "trials" / "00003" / "trial.json").read_text())
    assert card["trial"] == 3 and card["test_accuracy"] == record["test_accuracy"] > 0.8
    assert (study / "trials" / "00003" / "model.weights.h5").read_bytes() == weights  # never retrained

    np.save(tmp_path / "images.npy", small_mnist.test_images)
    np.save(tmp_path / "labels.npy", small_mnist.test_labels)
    reload = subprocess.run([sys.executable, "-c", RELOAD, str(folder), str(tmp_path / "images.npy"),
                             str(tmp_path / "labels.npy")], capture_output=True, text=True, cwd=tmp_path,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "KERAS_BACKEND": "tensorflow"})
    assert reload.returncode == 0, reload.stderr
    scores = json.loads(reload.stdout.strip().splitlines()[-1])
    assert scores["keras"] == card["test_accuracy"]
    assert scores["saved_model"] == card["test_accuracy"]
    assert scores["saved_model_output"] == "<dtype: 'float32'>"
    assert scores["tflite"] == card["tflite_test_accuracy"]
    assert abs(scores["tflite"] - card["test_accuracy"]) <= 0.005


def test_card_says_what_was_exported_from_where(study: Path, small_mnist, tmp_path: Path) -> None:
    folder = export(study, trial=5, out=tmp_path / "five", command="python -m search export tiny --trial 5")
    assert folder == tmp_path / "five"
    card = json.loads((folder / "model_card.json").read_text())
    assert (card["study"], card["trial"], card["baseline"], card["seed"]) == ("tiny", 5, None, 5)
    assert card["config"]["model"] == "softmax" and card["config"]["optimizer"] == "adam"  # defaults filled in
    assert card["n_params"] == 28 * 28 * 10 + 10
    assert card["dataset"] == {"name": "mnist", "checksum": small_mnist.checksum, "test_images": 10_000}
    assert set(card["versions"]) == {"python", "tensorflow", "keras", "optuna", "numpy"}
    assert card["export_command"] == "python -m search export tiny --trial 5"
    assert abs(datetime.now(UTC) - datetime.fromisoformat(card["date"])) < timedelta(minutes=5)
    assert set(card["files"]) == {"model.keras", "saved_model", "model.tflite"}
    assert card["files"]["model.tflite"] == (folder / "model.tflite").stat().st_size > 0
    text = (folder / "model_card.md").read_text()
    assert f"{card['test_accuracy']:.4f}" in text and small_mnist.checksum in text and "`softmax" in text


def test_exporting_again_replaces_the_earlier_export(study: Path, tmp_path: Path) -> None:
    out = tmp_path / "again"
    export(study, trial=5, out=out)
    (out / "stray.txt").write_text("from the first export")
    export(study, trial=5, out=out)
    assert {path.name for path in out.iterdir()} == FILES
    assert [path.name for path in tmp_path.iterdir()] == ["again"]  # no staging folder left behind


def test_a_folder_that_is_not_an_export_is_never_overwritten(study: Path, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="exists and is not an export"):
        export(study, out=tmp_path)
    assert [path.name for path in tmp_path.iterdir()] == ["notes.txt"]


@pytest.mark.parametrize(("trial", "message"), [
    (4, "--trial 4: not kept in .*; kept trials: 3, 5$"),
    (7, "--trial 7: not kept"),
])
def test_a_trial_that_is_not_kept_is_refused_in_one_line(study: Path, tmp_path: Path, trial: int,
                                                         message: str) -> None:
    with pytest.raises(InputError, match=message) as caught:
        export(study, trial=trial, out=tmp_path / "out")
    assert "\n" not in str(caught.value) and not (tmp_path / "out").exists()


def test_a_study_without_kept_trials_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no kept trials to export"):
        export(tmp_path / "empty")
    assert not (tmp_path / "empty").exists()


def corrupt_weights(folder: Path) -> None:
    (folder / "model.weights.h5").write_bytes(b"not an HDF5 file")


def change_accuracy(folder: Path) -> None:
    record = json.loads((folder / "trial.json").read_text())
    record["test_accuracy"] -= 0.01
    (folder / "trial.json").write_text(json.dumps(record))


def change_checksum(folder: Path) -> None:
    record = json.loads((folder / "trial.json").read_text())
    record["data_checksum"] = "0" * 64
    (folder / "trial.json").write_text(json.dumps(record))


@pytest.mark.parametrize(("damage", "message"), [
    (corrupt_weights, "cannot rebuild the model from its kept files"),
    (change_accuracy, "weights and record do not match"),
    (change_checksum, "this machine's copy has"),
], ids=["corrupt weights", "other accuracy", "other data"])
def test_damaged_trial_fails_before_anything_is_written(study: Path, tmp_path: Path, damage, message: str) -> None:
    copy = tmp_path / "tiny"
    shutil.copytree(study / "trials", copy / "trials")
    damage(copy / "trials" / "00003")
    with pytest.raises(InputError, match=message) as caught:
        export(copy, trial=3)
    assert "\n" not in str(caught.value)
    assert [path.name for path in copy.iterdir()] == ["trials"]


def test_export_command_on_a_real_study(finished_study: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from search.cli import main

    where = ["--results", str(finished_study)]
    assert main(["export", "small", *where]) == 0
    board = pd.read_csv(finished_study / "small" / "leaderboard.csv")
    out = finished_study / "small" / "export" / f"trial-{board['trial'].iloc[0]}"
    card = json.loads((out / "model_card.json").read_text())
    assert card["test_accuracy"] == pytest.approx(board["test_accuracy"].iloc[0], abs=5e-5)
    assert "search run" in card["command"] and "--trials 5" in card["command"]  # the search that made it
    assert {"model.keras", "saved_model", "model.tflite", "model_card.json", "model_card.md"} <= {
        p.name for p in out.iterdir()}
    capsys.readouterr()
    assert main(["export", "small", *where, "--trial", "99"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "99" in err


def test_a_search_trained_in_bfloat16_exports_its_recorded_accuracy(tmp_path: Path, write_space,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from optuna.trial import TrialState

    from search.cli import main
    from search.study.studies import load_study

    space = write_space("""
        SPACE = {"model": "mlp", "layers": [{"units": Int(16, 32)}], "learning_rate": 3e-3, "batch_size": 128}
    """, name="mixed.py")
    results = tmp_path / "results"
    where = ["--results", str(results)]
    assert main(["run", str(space), "--trials", "2", "--epochs", "1", "--train-size", "2000", "--workers", "1",
                 "--precision", "bfloat16", *where]) == 0
    said = " ".join(capsys.readouterr().out.split())  # rich wraps long lines at the console's width
    assert "trials train in mixed bfloat16 (--precision float32 turns it off)" in said  # at the run's start
    done = load_study("mixed", results, None).get_trials(states=(TrialState.COMPLETE,))
    assert [t.user_attrs["precision"] for t in done] == ["bfloat16", "bfloat16"]
    # export rebuilds the float32 model and refuses unless it scores exactly the recorded accuracy
    assert main(["export", "mixed", *where]) == 0


def test_with_no_confirmation_export_takes_the_kept_trial_best_by_validation(finished_study: Path,
                                                                            tmp_path: Path) -> None:
    from search.study import record
    from search.study.studies import load_study

    board = pd.read_csv(finished_study / "small" / "leaderboard.csv")
    complete = board[board["state"] == "complete"]
    by_validation = sorted(complete.itertuples(), key=lambda r: record.validation_order(r.val_accuracy, r.n_params,
                                                                                         r.trial))
    # keep-top 3 kept the best three by validation accuracy, whatever their test accuracy
    assert [r["trial"] for r in artifacts.kept(finished_study / "small")] == [r.trial for r in by_validation[:3]]
    folder = export(finished_study / "small", out=tmp_path / "default", study=load_study("small", finished_study))
    card = json.loads((folder / "model_card.json").read_text())
    assert card["trial"] == by_validation[0].trial == board[board["selected"]]["trial"].iloc[0]
    assert card["chosen"] == "the trial with the best validation accuracy (no confirmation was run)"


def test_when_the_best_trial_kept_its_weights_elsewhere_export_says_so_rather_than_take_the_next(
        finished_study: Path, tmp_path: Path) -> None:
    from search.study.studies import load_study

    # As on a machine whose worker did not run the study's best trial: its weights are not here.
    results = tmp_path / "results"
    shutil.copytree(finished_study, results)
    best = artifacts.kept(results / "small")[0]
    shutil.rmtree(best["path"])
    with pytest.raises(InputError) as caught:
        export(results / "small", out=tmp_path / "out", study=load_study("small", results))
    assert str(caught.value) == (f"trial {best['trial']}, the trial best by validation, has no kept weights in "
                                 f"{results / 'small'}; export it where its weights are, or here with --full-train")
    assert not (tmp_path / "out").exists()


def test_full_train_retrains_on_all_60000_images_and_tests_once(finished_study: Path, tmp_path: Path) -> None:
    from search.study.studies import load_study

    study = load_study("small", finished_study)
    board = pd.read_csv(finished_study / "small" / "leaderboard.csv")
    number = int(board[board["selected"]]["trial"].iloc[0])
    folder = export(finished_study / "small", out=tmp_path / "full", study=study, full_train=True)
    card = json.loads((folder / "model_card.json").read_text())
    assert card["trial"] == number and card["val_accuracy"] is None
    assert card["search_val_accuracy"] == board[board["trial"] == number]["val_accuracy"].iloc[0] == pytest.approx(
        card["search_val_accuracy"])
    best_epoch = study.get_trials(deepcopy=False)[number].user_attrs["best_epoch"]  # the search's best by validation
    assert card["trained_on"].startswith(f"all 60,000 training images (the 5,000 validation images too), "
                                         f"{best_epoch} epochs")
    assert card["test_accuracy"] > 0.85 and abs(card["tflite_test_accuracy"] - card["test_accuracy"]) <= 0.005
    assert "none held out" in (folder / "model_card.md").read_text()


ENSEMBLE_RELOAD = """
import json, sys
import numpy as np, keras
assert "search" not in sys.modules
from ai_edge_litert.interpreter import Interpreter
folder, images, labels = sys.argv[1], np.load(sys.argv[2]), np.load(sys.argv[3])
model = keras.models.load_model(f"{folder}/model.keras")
runner = Interpreter(f"{folder}/model.tflite").get_signature_runner("serving_default")
tflite = np.concatenate([runner(images=images[s:s + 1000])["probabilities"] for s in range(0, len(images), 1000)])
print(json.dumps({"keras": float(np.mean(model.predict(images, batch_size=1000, verbose=0).argmax(1) == labels)),
                  "tflite": float(np.mean(tflite.argmax(1) == labels)), "layers": len(model.layers)}))
"""


def test_an_ensemble_export_reloads_without_search_at_its_cards_accuracy(finished_study: Path, small_mnist,
                                                                        tmp_path: Path) -> None:
    kept = artifacts.kept(finished_study / "small")
    folder = export(finished_study / "small", ensemble=2, out=tmp_path / "ensemble")
    card = json.loads((folder / "model_card.json").read_text())
    assert [m["trial"] for m in card["members"]] == [r["trial"] for r in kept[:2]]  # the best two by validation
    assert [m["test_accuracy"] for m in card["members"]] == [r["test_accuracy"] for r in kept[:2]]
    assert card["n_params"] == sum(r["n_params"] for r in kept[:2])
    np.save(tmp_path / "images.npy", small_mnist.test_images)
    np.save(tmp_path / "labels.npy", small_mnist.test_labels)
    reload = subprocess.run([sys.executable, "-c", ENSEMBLE_RELOAD, str(folder), str(tmp_path / "images.npy"),
                             str(tmp_path / "labels.npy")], capture_output=True, text=True, cwd=tmp_path,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "KERAS_BACKEND": "tensorflow"})
    assert reload.returncode == 0, reload.stderr
    scores = json.loads(reload.stdout.strip().splitlines()[-1])
    assert scores["keras"] == card["test_accuracy"] and scores["tflite"] == card["tflite_test_accuracy"]
    assert scores["layers"] == 1 + 2 + 1  # the input, one nested model per member, their average
    assert "the average of 2 models" in (folder / "model_card.md").read_text()
