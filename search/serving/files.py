"""An exported model's files: what an export folder holds and the serving signature every format shares.

One home for the names `export` writes (`model.keras`, `saved_model/`, `model.tflite` and the model
card) and for the signature: uint8 images [N, 28, 28] in, ten float32 probabilities out.
`model_file` says which file `predict` runs for what a user points it at: an export folder's
model.tflite (or a .tflite file), run by LiteRT (litert.py) without TensorFlow; else a .keras file,
or a folder's model.keras, which only Keras can run (results/loading.py). It checks paths only.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from search.errors import InputError

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


def model_file(model: str | Path) -> tuple[str, Path]:
    """("tflite", file) or ("keras", file): what to run for MODEL, an export folder (its model.tflite,
    else its model.keras), a .tflite or a .keras file; checked without loading anything."""
    path = Path(model)
    if path.is_dir() and (path / TFLITE_FILE).is_file():
        return "tflite", path / TFLITE_FILE
    if path.is_file() and path.suffix == ".tflite":
        return "tflite", path
    return "keras", keras_file(path)


def keras_file(path: Path) -> Path:
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
