"""search: hyperparameter and architecture search for handwritten-digit recognition.

Declarative space files, Optuna trials that train Keras models on real MNIST, and a leaderboard
ranked by test accuracy. Run `python -m search --help`.
"""

import os

# Set before TensorFlow is first imported (lazily, by the stages that train): its C++ start-up
# chatter about CPU instructions and missing CUDA would otherwise bury our own output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# Whether TensorFlow uses oneDNN's CPU kernels is decided per process, by what it will train:
# see `search.runtime.start_tensorflow`.

__version__ = "0.1.0"
