"""twin's model life cycle: data readers, pairs, training, export, evaluation, calibration.

Images are never preprocessed here: `twin preprocess` (Rust, the same code that serves) turns
them into an .npy cache that this package reads, so training and serving cannot disagree.
"""
