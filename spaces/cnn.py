"""Convolutional networks for MNIST: conv blocks, filters, kernel, pooling, dense head, augmentation.

    python -m search run spaces/cnn.py --trials 50

S4 and S4 with batch norm, dropout and augmentation run first as labelled baselines. Result (2-core
CPU, docs/performance.md): 70 minutes, best by validation 99.42% test, against S4-aug's 99.26%.
"""

from search.baselines import baselines
from search.space import Choice, Float, Int, Repeat

SPACE = {
    "model": "cnn",
    # Each block: conv (SAME) -> [batch norm] -> activation -> 2x2 pooling; three poolings leave 3x3.
    # Filters stay at 40 or fewer: on 2 CPU cores a 64-64 5x5 network costs a minute an epoch.
    "conv_blocks": Repeat(Int(2, 3), {
        "filters": Int(12, 40, log=True),
        "kernel_size": Choice([3, 5]),
        "pooling": Choice(["max", "avg"]),
    }),
    "conv_activation": "relu",
    "layers": Repeat(Int(0, 1), {"units": Int(64, 256, log=True)}),  # the dense head
    "activation": Choice(["relu", "selu"]),
    "dropout": Float(0.0, 0.5),
    "batch_norm": Choice([False, True]),
    "augment": Choice({
        "none": {},
        "random": {"shift_pixels": Int(1, 3), "rotation_degrees": Float(0.0, 15.0)},
    }),
    "learning_rate": Float(5e-4, 5e-3, log=True),
    "schedule": Choice(["constant", "cosine"]),
    "batch_size": Choice([64, 128]),
    "epochs": 10,
}

BASELINES = baselines("S4", "S4-aug")
