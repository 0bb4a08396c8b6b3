"""Running an export's model.tflite with LiteRT's interpreter: no TensorFlow, a fraction of a second.

`load_tflite` opens a .tflite file whose serving signature is export's (serving/files.py) and
checks it on one blank image, so that an op LiteRT lacks fails at load, not in the middle of a batch.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from search.errors import InputError, first_line
from search.serving.files import IMAGE_SIZE, INPUT_NAME, OUTPUT_NAME, SERVES, SIGNATURE
from search.terminal import quiet_stderr


@dataclass
class TFLiteModel:
    """A model.tflite run through its serving signature by LiteRT's interpreter, without TensorFlow."""

    file: Path
    runner: Any  # ai_edge_litert's SignatureRunner: it resizes the input to each batch
    verbose: bool = False

    def __call__(self, images: np.ndarray) -> np.ndarray:
        with _chatter(self.verbose):
            return np.asarray(self.runner(**{INPUT_NAME: images})[OUTPUT_NAME])


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
