"""Grow a small image dataset with a DCGAN: train, watch in TensorBoard, export labelled synthetic images."""

# Kept free of heavy imports: image-decoding worker processes import this package too.
__version__ = "0.1.0"
