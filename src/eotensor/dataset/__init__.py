"""Datasets for training: patches images, iterators, TensorFlow and PyTorch adapters, TFRecords."""
