"""Edge code: the TFLite runtime and NumPy only, so it runs unchanged on a device.

Nothing in this package may import TensorFlow or torch at module level.
"""
