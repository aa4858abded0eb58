"""Tensor operators for training, as OTBTF's ``otbtf.ops``, written with ``keras.ops`` (any Keras 3 backend)."""

from __future__ import annotations

from typing import Any


def one_hot(labels: Any, nb_classes: int) -> Any:
    """One-hot vectors from labels of shape ``[..., 1]``: shape ``[..., nb_classes]``, float32.

    The last axis is squeezed and the labels cast to int32 first, as OTBTF does; labels outside
    ``[0, nb_classes)`` give all-zero vectors.
    """
    from keras import ops

    return ops.one_hot(ops.squeeze(ops.cast(labels, "int32"), axis=-1), nb_classes)
