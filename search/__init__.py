"""search: hyperparameter and architecture search for handwritten-digit recognition.

Declarative space files, Optuna trials that train Keras models on real MNIST, and a leaderboard
ranked by test accuracy. Run `python -m search --help`.
"""

import os

# Set before TensorFlow is first imported (lazily, by the stages that train): its C++ start-up
# chatter about CPU instructions and missing CUDA would otherwise bury our own output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# oneDNN's CPU kernels for matmul and convolution (and their gradients). This TensorFlow build
# leaves them off unless asked; with them the S2 MLP's train step ran about 20% faster and the CNN's
# about 30% (benchmarks/throughput.py). Set TF_ENABLE_ONEDNN_OPTS=0 to compare.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

__version__ = "0.1.0"
