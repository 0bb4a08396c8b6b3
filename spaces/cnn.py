"""Convolutional networks for MNIST: blocks, filters, kernels, dense head, augmentation, schedule.

    python -m search run spaces/cnn.py --trials 50

S4 and (cut to 3 of its 29 epochs) S4 with batch norm, dropout and augmentation run first as
baselines. Small batch-normalized CNNs, trained 12 epochs on randomly shifted and rotated digits
with label smoothing and a one-cycle (warm-up, then cosine) schedule. Result (2-core CPU,
docs/performance.md): 50 min; chosen by validation 99.52% test, top-5 ensemble (export --ensemble 5) 99.60%.
"""

from search.space import Choice, Float, Int, Repeat
from search.space.tutorials import baselines, shortened

SPACE = {
    "model": "cnn",
    # 3x3 conv (SAME) -> batch norm -> relu -> 2x2 max pooling; three blocks leave 3x3 maps. Filters stop
    # at 40 and kernels at 3: on one CPU thread a wider network costs a trial more than the search can spend.
    "conv_blocks": Repeat(Int(2, 3), {"filters": Int(16, 40, log=True)}),
    "layers": Repeat(Int(0, 1), {"units": Int(32, 128, log=True)}),  # the dense head
    "activation": "relu",
    "batch_norm": True,
    "dropout": Float(0.0, 0.4),
    "augment": "random",
    "shift_pixels": Int(1, 3),
    "rotation_degrees": Float(0.0, 15.0),
    "label_smoothing": Float(0.0, 0.15),
    "learning_rate": Float(1e-3, 8e-3, log=True),
    "schedule": "cosine",
    "warmup": Float(0.0, 0.3),  # above 0: one-cycle, up from a tenth of the rate first
    "batch_size": Choice([64, 128]),
    "epochs": 12,
}

BASELINES = {**baselines("S4"), **shortened("S4-aug", 3)}
