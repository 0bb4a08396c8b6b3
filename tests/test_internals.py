"""The one home of library internals (search/internals/): nothing else under search/ uses a private name
of Optuna, Keras, TensorFlow or KerasTuner, and each one still works in the installed versions."""

from __future__ import annotations

import ast
import os
from importlib import metadata

import pytest
from helpers import ROOT

from search.internals import WRITTEN_FOR, of_keras, of_keras_tuner, of_optuna, of_tensorflow

LIBRARIES = ("optuna", "optuna_integration", "keras", "tensorflow", "keras_tuner")
STANDARD = {"_exit"}  # os._exit: the standard library's documented way to end a forked child at once


def _private(name: str) -> bool:
    return any(part.startswith("_") and not part.startswith("__") for part in name.split("."))


def _own_names() -> set[str]:
    """Every private name `search` defines itself (functions, classes, attributes it sets)."""
    names = set()
    for path in (ROOT / "search").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
                names.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.arg):
                names.add(node.arg)
    return names


@pytest.mark.fast
def test_no_private_library_name_outside_internals() -> None:
    own, offenders = _own_names(), []
    for path in sorted((ROOT / "search").rglob("*.py")):
        if "internals" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in LIBRARIES and (
                    _private(node.module) or any(_private(alias.name) for alias in node.names)):
                offenders.append(f"{where} from {node.module} import ...")
            elif isinstance(node, ast.Import):
                offenders += [f"{where} import {a.name}" for a in node.names
                              if a.name.split(".")[0] in LIBRARIES and _private(a.name)]
            elif isinstance(node, ast.Attribute) and _private(node.attr) and node.attr not in own | STANDARD:
                offenders.append(f"{where} .{node.attr}")
    assert offenders == []


@pytest.mark.fast
@pytest.mark.parametrize("package", sorted(WRITTEN_FOR))
def test_internals_were_written_for_the_installed_versions(package: str) -> None:
    # A new version may have moved a private name: check each use below, then update WRITTEN_FOR.
    assert metadata.version(package) == WRITTEN_FOR[package]


def test_each_private_api_still_does_its_job() -> None:
    import optuna
    from optuna.trial import TrialState

    from search.training.runtime import start_tensorflow

    assert of_optuna.journal_set_trial_state() == 6
    assert of_optuna.journal_operations() == set(range(11))
    study = optuna.create_study()
    trial = study.ask()
    study.tell(trial, state=TrialState.FAIL)
    assert TrialState.FAIL.value == 3  # the state values a torn journal record holds
    import tempfile

    from optuna.storages.journal import JournalFileOpenLock

    with tempfile.TemporaryDirectory() as folder:  # Optuna's open-lock holds the very file ours writes its holder in
        journal = f"{folder}/journal.log"
        optuna_lock = JournalFileOpenLock(journal)
        assert optuna_lock.acquire()
        assert os.path.exists(of_optuna.journal_lock_file(journal))
        optuna_lock.release()
        assert not os.path.exists(of_optuna.journal_lock_file(journal))
    start_tensorflow()
    assert isinstance(of_tensorflow.onednn_enabled(), bool)
    import keras

    keras.config.enable_unsafe_deserialization()  # what a careless caller could have done process-wide
    try:
        with of_keras.safe_mode():
            from keras.src.saving import serialization_lib

            assert serialization_lib.in_safe_mode()
    finally:
        keras.config.enable_unsafe_deserialization()  # leave the process as it was (unsafe was set above)
    from keras_tuner.src import config

    of_keras_tuner.tracebacks(False)
    assert config.DEBUG is False
    of_keras_tuner.tracebacks(True)
