"""Convolutional networks for MNIST: blocks, filters, dense head, augmentation, up to 30 epochs.

    python -m search baselines --only S4 --only S4-aug --seed 0   # and --seed 1 to 4: once per kind of machine
    python -m search run spaces/cnn.py --trials 50

Small batch-normalized CNNs trained on randomly shifted and rotated digits, with label smoothing and
a one-cycle schedule (warm-up, then cosine to zero over the full 30 epochs: right for the trials
that train them all). Successive halving (PRUNER) judges every trial after epochs 2, 5 and 17, so
most stop after 2 and only the few that keep winning train the full length, the first trials
included. S4 and S4 with batch norm, dropout and augmentation are the baselines, as written: trained
once by `search baselines` into the results folder's reference store, a study records them from
there instead of training them again. Result (2-core Intel VM, docs/performance.md): 31 min; then
`confirm cnn`, 8.4 min: the winner 99.63 ± 0.06% test against S4 with augmentation's 99.28 ± 0.07%
(5 seeds), p = 0.00046.
"""

from search.space import Float, Int, Repeat, baselines

SPACE = {
    "model": "cnn",
    # 3x3 conv (SAME) -> batch norm -> relu -> 2x2 max pooling; three blocks leave 3x3 maps. Filters
    # come in steps of 16: oneDNN's CPU convolutions run in blocks of 16 channels, and the counts beside
    # them trained 2.4-3.9 times slower per epoch (benchmarks/conv_channels.py). Filters stop at 64 and batches
    # are 128: on one CPU thread a wider network, or smaller batches, cost a 30-epoch training more
    # than the search and its confirmation can spend.
    "conv_blocks": Repeat(Int(2, 3), {"filters": Int(16, 64, step=16)}),
    "layers": Repeat(Int(0, 1), {"units": Int(64, 256, log=True)}),  # the dense head
    "activation": "relu",
    "batch_norm": True,
    "dropout": Float(0.0, 0.4),
    "augment": "random",
    "shift_pixels": Int(1, 3),
    "rotation_degrees": Float(0.0, 15.0),
    "label_smoothing": Float(0.0, 0.15),
    "learning_rate": Float(1e-3, 1e-2, log=True),
    "schedule": "cosine",
    "warmup": Float(0.0, 0.3),  # above 0: one-cycle, up from a tenth of the rate first
    "batch_size": 128,
    "epochs": 30,
}

PRUNER = "halving"
BASELINES = baselines("S4", "S4-aug")
