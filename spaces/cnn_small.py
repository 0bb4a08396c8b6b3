"""Small CNNs for MNIST: the most accurate model of at most 20,000 weights.

    python -m search run spaces/cnn_small.py --max-params 20000

Three batch-normalized conv blocks and no dense head, trained 15 epochs on randomly shifted and
rotated digits with a one-cycle schedule; --max-params rejects a larger config before it trains.
Result (2-core CPU, docs/performance.md): chosen by validation 14,359 weights, 99.47% test.
"""

from search.space import Choice, Float, Int, Repeat

SPACE = {
    "model": "cnn",
    "conv_blocks": Repeat(3, {"filters": Int(8, 40, log=True), "kernel_size": Choice([3, 5])}),
    "batch_norm": True,
    "augment": "random",
    "shift_pixels": Int(1, 3),
    "rotation_degrees": Float(0.0, 15.0),
    "label_smoothing": Float(0.0, 0.1),
    "learning_rate": Float(2e-3, 1e-2, log=True),
    "schedule": "cosine",
    "warmup": Float(0.05, 0.3),
    "batch_size": Choice([64, 128]),
    "epochs": 15,
}
