"""The one home of every private API of Optuna, Keras, TensorFlow and KerasTuner that `search` uses.

Each is here because no public API does its job, and each says which job; one module per library
(`of_optuna`, `of_tensorflow`, `of_keras`, `of_keras_tuner`), so that a stage importing one does not
reach the others' libraries. Nothing else under `search/` may import a private name of these
libraries (tests/test_internals.py checks the whole package); the same test pins the versions they
were written against and exercises each, so that an upgrade that moves one fails there, by name,
instead of somewhere in the middle of a search.
"""

WRITTEN_FOR = {"optuna": "5.1.0", "keras": "3.15.1", "tensorflow": "2.21.0", "keras-tuner": "1.4.8"}
