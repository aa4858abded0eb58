"""Keras 3 layers of OTBTF's ``otbtf.layers``, written with ``keras.ops`` so that they run on any backend.

Same constructor arguments and semantics as OTBTF's; each is registered as serializable (package
``eotensor``) and returns its arguments from ``get_config``, so a model using them saves to and loads
from a ``.keras`` file. ``ArgMax`` is another name for ``Argmax`` (OTBTF's release notes use it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

_serializable = keras.saving.register_keras_serializable(package="eotensor")


@_serializable
class DilatedMask(keras.layers.Layer):
    """A uint8 mask, 1 where the input equals ``nodata_value``, dilated by a ``(2 radius + 1)²`` square.

    Input ``[batch, h, w, c]`` (OTBTF: single channel); each channel is dilated on its own, borders not
    extended (a window sees only pixels inside the image, as ``dilation2d`` with SAME padding).
    """

    def __init__(self, nodata_value: float, radius: int, name: str | None = None, **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self.nodata_value = nodata_value
        self.radius = radius

    def call(self, inp: Any) -> Any:
        mask = ops.cast(ops.equal(inp, self.nodata_value), "float32")
        size = 2 * self.radius + 1
        dilated = ops.max_pool(mask, pool_size=size, strides=1, padding="same")
        return ops.cast(dilated, "uint8")

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "nodata_value": self.nodata_value, "radius": self.radius}


@_serializable
class ApplyMask(keras.layers.Layer):
    """Called on ``(mask, input)``: ``out_nodata`` where the mask is 1, the input elsewhere."""

    def __init__(self, out_nodata: float, name: str | None = None, **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self.out_nodata = out_nodata

    def call(self, inputs: Sequence[Any]) -> Any:
        mask, inp = inputs
        return ops.where(ops.equal(mask, 1), ops.cast(self.out_nodata, inp.dtype), inp)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "out_nodata": self.out_nodata}


@_serializable
class ScalarsTile(keras.layers.Layer):
    """Called on ``[reference, scalars]``: the scalars, each of shape ``[batch]`` (as OTBTF) or ``[batch, 1]``
    (a ``keras.Input((1,))``), stacked on the last axis and repeated over the reference's rows and columns:
    shape ``[batch, h, w, len(scalars)]``."""

    def call(self, inputs: Sequence[Any]) -> Any:
        ref, scalars = inputs
        scalars = [ops.squeeze(s, axis=-1) if len(s.shape) == 2 else s for s in scalars]
        stacked = ops.stack(scalars, axis=-1)[:, None, None, :]
        shape = ops.shape(ref)  # not a slice of ref: a sparse reference (cast then scaled) cannot be sliced
        return ops.broadcast_to(stacked, (shape[0], shape[1], shape[2], len(scalars)))


@_serializable
class Argmax(keras.layers.Layer):
    """Index of the maximum over the last axis, int64 (a softmax into a class map); the last axis is kept
    with size 1 when ``expand_last_dim`` is True."""

    def __init__(self, name: str | None = None, expand_last_dim: bool = True, **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self.expand_last_dim = expand_last_dim

    def call(self, inputs: Any) -> Any:
        argmax = ops.cast(ops.argmax(inputs, axis=-1), "int64")
        return ops.expand_dims(argmax, axis=-1) if self.expand_last_dim else argmax

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "expand_last_dim": self.expand_last_dim}


ArgMax = Argmax


@_serializable
class Max(keras.layers.Layer):
    """Maximum over the last axis, kept with size 1 (a softmax into a confidence map)."""

    def call(self, inputs: Any) -> Any:
        return ops.max(inputs, axis=-1, keepdims=True)


__all__ = ["ApplyMask", "ArgMax", "Argmax", "DilatedMask", "Max", "ScalarsTile"]


@_serializable
class Crop(keras.layers.Layer):
    """The input without ``crop`` pixels on each side of its rows and columns (``x[:, c:-c, c:-c, :]``, as
    OTBTF's ModelBase slices): empty, never an error, when the input is too small (training on patches smaller
    than a crop meant for serving)."""

    def __init__(self, crop: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.crop = int(crop)

    def call(self, inputs: Any) -> Any:
        c = self.crop
        return inputs if c <= 0 else inputs[:, c:-c, c:-c, :]

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "crop": self.crop}
