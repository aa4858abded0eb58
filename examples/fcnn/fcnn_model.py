"""The small fully-convolutional network of OTBTF's FCNN example (building / other), on eotensor's ``ModelBase``.

Four 3x3 stride-2 convolutions (16, 32, 64, 64 filters) take a patch down to 1/16 of its size; four 3x3 stride-2
transposed convolutions take it back up, each added to the encoder output of the same size (skips); the last
one, ``classifier``, has one channel per class and a softmax gives the class probabilities. The network works
on any input whose rows and columns are multiples of 16. The radiometric scaling (x 1e-4) is inside the graph,
so TensorflowModelServe feeds the raw int16 pixels.

Output names: the softmax layer is named ``predictions_softmax_tensor`` as in OTBTF, but Keras 3's
``model.export()`` names signature outputs by the model's output keys (eotensor decision 7), so the output to
serve is ``predictions_crop16`` (:func:`served_output_name`), not OTBTF's ``predictions_softmax_tensor_crop16``.
"""

from __future__ import annotations

from typing import Any

from eotensor.model.base import ModelBase, cropped_tensor_name
from eotensor.model.ops import one_hot

N_CLASSES = 2
INPUT_NAME = "input_xs"
"""The model's input: the image patches (dataset key ``input_xs_patches`` once preprocessed)."""
TARGET_NAME = "predictions"
"""The model's output and training target: class probabilities (one-hot labels for training)."""
OUTPUT_SOFTMAX_NAME = "predictions_softmax_tensor"
"""The name of the softmax layer (OTBTF's output name with Keras 2)."""
INPUT_PATCHES_KEY = "input_xs_patches"
LABELS_PATCHES_KEY = "labels_patches"
"""The dataset's keys: the image patches and the label patches, as PatchesExtraction writes them."""
SCALE = 1e-4
"""Reflectance x 10000 back to reflectance."""
LEVELS = 4
"""Stride-2 levels: input rows and columns must be multiples of 2**LEVELS = 16."""


def served_output_name(crop: int = 16) -> str:
    """The output key TensorflowModelServe asks for: the predictions without ``crop`` pixels on each side."""
    return cropped_tensor_name(TARGET_NAME, crop)


def dataset_preprocessing_fn(examples: dict[str, Any]) -> dict[str, Any]:
    """A dataset example (patches) -> the model's input and target: ``input_xs`` and one-hot ``predictions``."""
    return {INPUT_NAME: examples[INPUT_PATCHES_KEY],
            TARGET_NAME: one_hot(examples[LABELS_PATCHES_KEY], N_CLASSES)}


class FCNNModel(ModelBase):
    """OTBTF's ``FCNNModel``: input ``input_xs`` (raw pixels), output ``predictions`` (``N_CLASSES`` probabilities
    per pixel) and its cropped versions ``predictions_crop<c>``."""

    def normalize_inputs(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """Cast to float32 and scale by :data:`SCALE`."""
        from keras import ops

        return {INPUT_NAME: ops.cast(inputs[INPUT_NAME], "float32") * SCALE}

    def get_outputs(self, normalized_inputs: dict[str, Any]) -> dict[str, Any]:
        """Encoder (stride-2 convolutions), decoder (stride-2 transposed convolutions with additive skips),
        ``classifier``, softmax."""
        from keras import layers

        encoded = [normalized_inputs[INPUT_NAME]]
        for level, depth in enumerate((16, 32, 64, 64), start=1):
            conv = layers.Conv2D(depth, 3, strides=2, padding="same", activation="relu", name=f"conv{level}")
            encoded.append(conv(encoded[-1]))
        decoded = encoded.pop()
        for level, skip in enumerate(reversed(encoded[1:]), start=1):  # up to the sizes of conv3, conv2, conv1
            tconv = layers.Conv2DTranspose(skip.shape[-1], 3, strides=2, padding="same", activation="relu",
                                           name=f"tconv{level}")
            decoded = layers.Add(name=f"skip{level}")([tconv(decoded), skip])
        logits = layers.Conv2DTranspose(N_CLASSES, 3, strides=2, padding="same", name="classifier")(decoded)
        return {TARGET_NAME: layers.Softmax(name=OUTPUT_SOFTMAX_NAME)(logits)}
