"""The graph pipeline: PyTorch Geometric models, search, GLNN distillation, export to TFLite.

Every module here imports torch / PyG except `store` (NumPy only: the prepared arrays, read by
every stage) and `export` (TensorFlow only, through `pipelines.vision.tfk`): TensorFlow and
torch never meet in one process.
"""
