"""Drawing real MNIST digits as a person's scan or photo would show them, for the serving tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from search.serving import predict


def dark_on_light(digit: np.ndarray, scale: int = 5) -> Image.Image:
    side = 28 * scale
    return Image.fromarray(255 - digit).resize((side, side), Image.Resampling.LANCZOS)


def centre_of_mass(image: np.ndarray) -> tuple[float, float]:
    ys, xs = np.indices(image.shape)
    weights = image.astype(float)
    return float((ys * weights).sum() / weights.sum()), float((xs * weights).sum() / weights.sum())


def reference(tmp_path: Path, digit: np.ndarray) -> np.ndarray:
    dark_on_light(digit).save(tmp_path / "reference.png")
    return predict.prepare(tmp_path / "reference.png").astype(int)
