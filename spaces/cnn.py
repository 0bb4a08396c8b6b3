"""Convolutional networks for MNIST: conv blocks, filters, kernel, pooling, dense head, augmentation.

    python -m search run spaces/cnn.py --trials 50

Two versions of the S4 tutorial run first as labelled baselines: the plain LeNet-style CNN (conv
12 -> 3x3/2 pool -> conv 16 -> 3x3/2 pool -> SELU 288 -> SELU 144, Adam, 19 epochs) and the same
with batch norm, dropout and S4's augmentation (1-pixel shifts in four directions plus horizontal
mirror images, x6 per epoch, 29 epochs; mirroring digits is dubious, and its label says so). The
second is by far the longest trial. The search then tries 2-3 conv blocks, kernels 3/5, max/avg
pooling, a dense head, dropout, batch norm, random shifts and rotations, and a cosine schedule,
for 10 epochs.

Measured (`--trials 50 --workers 2 --seed 0`, 2-core CPU machine, no GPU): 70 min 9 s, peak
memory 2.30 GB (the largest process), 17 trials complete and 33 pruned. Baselines: S4 98.78% test
(published 99.07%), S4 with batch norm, dropout and augmentation 99.26% (99.5%; 35.6 min of the
run on its own). Best searched: 99.44% test (trial 27: conv 17 5x5 -> 30 5x5 avg -> 33 3x3 avg,
SELU 211, dropout 0.39, Adam 2.5e-3 with a cosine schedule, batch 128; 244 s); the best by
validation (trial 22, 99.60%) scored 99.42% test.
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
