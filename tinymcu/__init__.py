"""tinymcu: federated pruning → int8 TFLite → exact memory planning → bit-exact MCU runtime."""

__version__ = "0.1.0"
