"""What the serving tests share: real MNIST test digits, drawn as a person's scan would be."""

from __future__ import annotations

import numpy as np
import pytest

from search.training import datasets

DIGIT_INDEX = 0  # the first MNIST test image, a 7


@pytest.fixture(scope="module")
def mnist() -> datasets.Dataset:
    return datasets.load("mnist", train_size=20_000)


@pytest.fixture
def digit(mnist: datasets.Dataset) -> np.ndarray:
    return np.array(mnist.test_images[DIGIT_INDEX])
