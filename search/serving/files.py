"""An exported model, and how to run it: the files `export` writes and the classifiers `predict` calls.

One home for what an export folder holds (`model.keras`, `saved_model/`, `model.tflite` and the
model card) and for the serving signature every format shares: uint8 images [N, 28, 28] in, ten
float32 probabilities out. `load_model` opens what a user points `predict` at: an export folder's
model.tflite (or a .tflite file) through LiteRT's interpreter, which starts in a fraction of a
second where TensorFlow takes seconds; a `.keras` file (or a folder without model.tflite) through
Keras in safe mode, so a model file cannot run code on load. Nothing here imports TensorFlow until
a .keras model is loaded.
"""

from __future__ import annotations

import contextlib
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from search.errors import InputError, first_line
from search.training.runtime import quiet_stderr, start_tensorflow

if TYPE_CHECKING:
    import keras

KERAS_FILE = "model.keras"
SAVED_MODEL = "saved_model"
TFLITE_FILE = "model.tflite"
CARD_JSON = "model_card.json"
CARD_MARKDOWN = "model_card.md"
SIGNATURE, INPUT_NAME, OUTPUT_NAME = "serving_default", "images", "probabilities"
SERVES = f"{INPUT_NAME} uint8 [-1, 28, 28] -> {OUTPUT_NAME} float32 [-1, 10]"
IMAGE_SIZE = 28
BATCH = 1000  # images per model call: 10,000 at once would hold a GB of a CNN's activations


Classifier = Callable[[np.ndarray], np.ndarray]  # uint8 images [N, 28, 28] -> float32 probabilities [N, 10]


@dataclass
class TFLiteModel:
    """A model.tflite run through its serving signature by LiteRT's interpreter, without TensorFlow."""

    file: Path
    runner: Any  # ai_edge_litert's SignatureRunner: it resizes the input to each batch
    verbose: bool = False

    def __call__(self, images: np.ndarray) -> np.ndarray:
        with _chatter(self.verbose):
            return np.asarray(self.runner(**{INPUT_NAME: images})[OUTPUT_NAME])


@dataclass
class KerasModel:
    """A Keras model called as `predict` calls a model: uint8 images [N, 28, 28] in, probabilities out."""

    model: keras.Model

    def __call__(self, images: np.ndarray) -> np.ndarray:
        batch = images.reshape((-1, *self.model.input_shape[1:]))  # a .keras file may take 784 or 28x28x1
        return np.asarray(self.model.predict(batch, batch_size=BATCH, verbose=0))


def load_model(model: str | Path, verbose: bool = False) -> Classifier:
    """What `predict` runs for MODEL: an export folder's model.tflite (or a .tflite file) through LiteRT,
    which starts in a fraction of a second; else a .keras file, or an export folder's model.keras,
    through Keras in safe mode, which first starts TensorFlow (seconds). `verbose` lets their C++
    start-up chatter through to stderr."""
    path = Path(model)
    if path.is_dir() and (path / TFLITE_FILE).is_file():
        return load_tflite(path / TFLITE_FILE, verbose)
    if path.is_file() and path.suffix == ".tflite":
        return load_tflite(path, verbose)
    file = _keras_file(path)  # a wrong path is told before TensorFlow's start-up, not after
    start_tensorflow(verbose=verbose)
    return KerasModel(load_keras(file))


def load_tflite(file: Path, verbose: bool = False) -> TFLiteModel:
    """A .tflite file whose serving signature is export's (uint8 28x28 images -> ten probabilities)."""
    from ai_edge_litert.interpreter import Interpreter

    try:
        with _chatter(verbose):  # LiteRT announces its XNNPACK delegate on stderr
            interpreter = Interpreter(model_path=str(file))
            if SIGNATURE not in interpreter.get_signature_list():
                raise InputError(f"{file}: no {SIGNATURE} signature (want {SERVES}, as export writes)")
            runner = interpreter.get_signature_runner(SIGNATURE)
            serves = f"{_signature(runner.get_input_details())} -> {_signature(runner.get_output_details())}"
            if serves != SERVES:
                raise InputError(f"{file}: {SIGNATURE} maps {serves}, want {SERVES}")
            model = TFLiteModel(file, runner, verbose)
            model(np.zeros((1, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8))  # an op LiteRT lacks fails here, not mid-batch
    except InputError:
        raise
    except Exception as err:  # not a flatbuffer, an unsupported op: LiteRT raises ValueError or RuntimeError
        raise InputError(f"{file}: cannot load model: {first_line(err)}") from None
    return model


def _signature(details: dict[str, dict[str, Any]]) -> str:
    return ", ".join(f"{name} {np.dtype(d['dtype']).name} {d['shape_signature'].tolist()}"
                     for name, d in sorted(details.items()))


def _chatter(verbose: bool) -> contextlib.AbstractContextManager[None]:
    return contextlib.nullcontext() if verbose else quiet_stderr()


def _keras_file(path: Path) -> Path:
    """The .keras file `path` names (itself, or an export folder's model.keras), checked without Keras."""
    file = path / KERAS_FILE if path.is_dir() else path
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    if not file.is_file():
        raise InputError(f"{path}: no {TFLITE_FILE} or {KERAS_FILE} in this folder "
                         "(want an export folder, a .tflite or a .keras file)")
    if file.suffix != ".keras" or not zipfile.is_zipfile(file):
        raise InputError(f"{file}: not a model file (want an export folder, a .tflite file or a .keras zip "
                         "from keras.saving.save_model)")
    return file


def load_keras(path: str | Path) -> keras.Model:
    """The Keras model in an export folder (its model.keras) or in a .keras file, loaded in safe mode."""
    file = _keras_file(Path(path))
    import keras

    from search import internals

    try:
        # Safe mode refuses Lambda layers and other pickled Python instead of running them. The
        # scope pins it: a process-wide enable_unsafe_deserialization() would override the argument.
        with internals.keras_safe_mode():
            model = keras.models.load_model(file, compile=False, safe_mode=True)
    except Exception as err:  # a corrupt zip, bad JSON or unknown layer: Keras raises many kinds
        reason = first_line(err)
        if "safe_mode" in str(err) or "arbitrary code" in str(err):
            reason = "refused: it holds Python code (such as a Lambda layer) that safe mode will not run"
        raise InputError(f"{file}: cannot load model: {reason}") from None
    if tuple(model.output_shape[1:]) != (10,) or np.prod(model.input_shape[1:]) != IMAGE_SIZE * IMAGE_SIZE:
        raise InputError(f"{file}: model maps {model.input_shape} to {model.output_shape}, want 28x28 -> 10")
    return model
