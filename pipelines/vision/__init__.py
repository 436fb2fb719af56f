"""The vision pipeline: TensorFlow, tf-keras (Keras 2), tfmot, keras-tuner."""
