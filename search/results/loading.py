"""Opening an exported model to run it, whatever the user points `predict` at.

`load_model` runs an export folder's model.tflite (or a .tflite file) with LiteRT (serving/litert.py),
which starts in a fraction of a second where TensorFlow takes seconds; a `.keras` file (or a folder
without model.tflite) through Keras in safe mode, so a model file cannot run code on load.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from search.errors import InputError, first_line
from search.serving.files import BATCH, IMAGE_SIZE, Classifier, keras_file, model_file
from search.serving.litert import load_tflite

if TYPE_CHECKING:
    import keras


@dataclass
class KerasModel:
    """A Keras model called as `predict` calls a model: uint8 images [N, 28, 28] in, probabilities out."""

    model: keras.Model

    def __call__(self, images: np.ndarray) -> np.ndarray:
        batch = images.reshape((-1, *self.model.input_shape[1:]))  # a .keras file may take 784 or 28x28x1
        return np.asarray(self.model.predict(batch, batch_size=BATCH, verbose=0))


def load_model(model: str | Path, verbose: bool = False) -> Classifier:
    """What `predict` runs for MODEL (serving.files.model_file says which file): LiteRT for a .tflite,
    else Keras, which first starts TensorFlow (seconds). `verbose` lets their C++ start-up chatter
    through to stderr."""
    kind, file = model_file(model)  # a wrong path is told before TensorFlow's start-up, not after
    if kind == "tflite":
        return load_tflite(file, verbose)
    from search.training.runtime import start_tensorflow

    start_tensorflow(verbose=verbose)
    return KerasModel(load_keras(file))


def load_keras(path: str | Path) -> keras.Model:
    """The Keras model in an export folder (its model.keras) or in a .keras file, loaded in safe mode."""
    file = keras_file(Path(path))
    import keras

    from search.internals import of_keras

    try:
        # Safe mode refuses Lambda layers and other pickled Python instead of running them.
        with of_keras.safe_mode():
            model = keras.models.load_model(file, compile=False, safe_mode=True)
    except Exception as err:  # a corrupt zip, bad JSON or unknown layer: Keras raises many kinds
        reason = first_line(err)
        if "safe_mode" in str(err) or "arbitrary code" in str(err):
            reason = "refused: it holds Python code (such as a Lambda layer) that safe mode will not run"
        raise InputError(f"{file}: cannot load model: {reason}") from None
    if tuple(model.output_shape[1:]) != (10,) or np.prod(model.input_shape[1:]) != IMAGE_SIZE * IMAGE_SIZE:
        raise InputError(f"{file}: model maps {model.input_shape} to {model.output_shape}, want 28x28 -> 10")
    return model
