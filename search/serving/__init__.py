"""The serving stage: an exported model's files and how to run them on digit images.

`files` names what an export folder holds and the serving signature; `predict` prepares images as
MNIST was made and classifies them. Nothing here imports TensorFlow until a .keras file is loaded.
"""
