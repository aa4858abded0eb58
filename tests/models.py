"""Builders of real SavedModels for the tests (current TensorFlow and Keras 3; nothing downloaded).

Each ``build_xxx(path)`` writes one SavedModel into ``path`` and returns the directory as a string.
TensorFlow is imported inside the builders only, so importing this module stays cheap for tests that
never build a model. Keras 3 cannot apply raw ``tf.*`` functions to symbolic Keras inputs, so most
graphs are ``tf.Module`` + ``tf.function(input_signature=...)`` saved with a ``serving_default``
signature; ``build_add_one`` and ``build_conv_fcn`` use ``keras.ops``/layers and ``model.export``.

The talk's "big calculator" graphs (inputs ``x`` or ``x1``/``x2``, output ``y``):
``build_scalar_product``, ``build_scalar_product_ax``, ``build_add_one``, ``build_norm`` and
``build_matrix_round4``. The other builders cover the model kinds and dtypes the runtime must handle.
"""

from __future__ import annotations

import os

import numpy as np

from eotensor.samples import build_talk_model, save_module

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

IMAGE = [None, None, None, None]
"""Shape of an image input of any size and band count (batch, rows, columns, channels)."""


def _tf():
    from eotensor.runtimes.tensorflow import import_tensorflow

    return import_tensorflow()


def _save_module(path, fn, specs, signature="serving_default"):
    return save_module(path, fn, specs, signature)


def build_scalar_product(path):
    """The talk's scalar product of two sources: ``reduce_sum(x1 * x2, -1)``."""
    return build_talk_model("scalar_product", path)


def build_scalar_product_ax(path):
    """The talk's ``reduce_sum(x * a, -1)`` with the user placeholder ``a`` (float32 ``[None]``)."""
    return build_talk_model("scalar_product_ax", path)


def build_add_one(path):
    """The talk's round 1, ``x + [1, 1, 1, 1]``, with Keras 3 ``keras.ops`` and ``model.export``."""
    return build_talk_model("add_one", path)


def build_norm(path):
    """The talk's round 2, ``tf.norm(x, axis=-1)``."""
    return build_talk_model("norm", path)


def build_matrix_round4(path):
    """The talk's round 4 per-pixel matrix computation; signature output ``[None, None, 1]``."""
    return build_talk_model("matrix_round4", path)


def build_tf1_simple_save(path):
    """A TF1 graph saved with ``simple_save``: placeholder ``x`` (float32 ``[?,?,?,4]``), ``y = x*2 + 1``.

    The signature keys are ``x:0`` and ``y:0`` (users type ``x`` and ``y``, OTBTF strips ``:0``).
    """
    tf = _tf()
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, None, None, 4], name="x")
        y = tf.identity(x * 2.0 + 1.0, name="y")
        with tf.compat.v1.Session(graph=graph) as session:
            tf.compat.v1.saved_model.simple_save(session, os.fspath(path), inputs={"x:0": x}, outputs={"y:0": y})
    return os.fspath(path)


def build_keras2_style(path):
    """Signature keys as Keras 2 wrote them: input ``input_1``, outputs named after the output layers.

    ``dense`` = sum over channels (``[?,?,?,1]``) and ``dense_1`` = ``input_1 * 3`` (``[?,?,?,4]``).
    """
    tf = _tf()
    return _save_module(
        path,
        lambda input_1: {"dense": tf.reduce_sum(input_1, axis=-1, keepdims=True), "dense_1": input_1 * 3.0},
        {"input_1": ([None, None, None, 4], "float32")},
    )


def build_keras3_list_outputs(path):
    """A Keras 3 model with list inputs/outputs: ``model.export`` names the outputs ``output_0``, ``output_1``.

    Inputs ``x1``, ``x2`` (``[?,?,?,4]``, keyed by the ``keras.Input`` names); ``output_0 = x1 + x2``,
    ``output_1 = x1 - x2``.
    """
    _tf()
    import keras

    x1 = keras.Input(shape=(None, None, 4), name="x1")
    x2 = keras.Input(shape=(None, None, 4), name="x2")
    model = keras.Model([x1, x2], [keras.ops.add(x1, x2), keras.ops.subtract(x1, x2)])
    model.export(os.fspath(path), verbose=False)
    return os.fspath(path)


def build_scalar_placeholder(path):
    """Input ``x`` and a rank-0 float32 placeholder ``k`` (``TensorSpec([], tf.float32)``); ``y = x * k``."""
    return _save_module(path, lambda x, k: {"y": x * k}, {"x": (IMAGE, "float32"), "k": ([], "float32")})


def build_int_placeholder(path):
    """Input ``x`` and an int32 placeholder ``n`` of shape ``[None]``; ``y = x + float(n[0])``."""
    tf = _tf()
    return _save_module(path, lambda x, n: {"y": x + tf.cast(n[0], tf.float32)},
                        {"x": (IMAGE, "float32"), "n": ([None], "int32")})


def build_uint8_input(path):
    """Input ``x`` declared ``uint8`` (pixels must be cast to it); ``y = float32(x) * 2``."""
    tf = _tf()
    return _save_module(path, lambda x: {"y": tf.cast(x, tf.float32) * 2.0}, {"x": (IMAGE, "uint8")})


def build_other_signature(path):
    """Like ``build_add_one`` but saved under the signature key ``predict`` (no ``serving_default``)."""
    return _save_module(path, lambda x: {"y": x + 1.0}, {"x": (IMAGE, "float32")}, signature="predict")


def build_difference(path):
    """Inputs declared in the order ``b``, ``a`` (the signature map forgets it): ``y = b - a``.

    Sources bind alphabetically to SavedModel inputs (OTBTF): source1 feeds ``a`` despite the declaration.
    """
    return _save_module(path, lambda b, a: {"y": b - a}, {"b": (IMAGE, "float32"), "a": (IMAGE, "float32")})


def build_fused_float_math(path):
    """``y = reduce_sum(x1 * x2 + x1 * 0.3, -1)``: multiply-adds and a reduction, which XLA may fuse or reorder."""
    tf = _tf()
    return _save_module(path, lambda x1, x2: {"y": tf.reduce_sum(x1 * x2 + x1 * 0.3, axis=-1)},
                        {"x1": (IMAGE, "float32"), "x2": (IMAGE, "float32")})


def build_no_signature(path):
    """A SavedModel with no signature at all (a module holding one variable)."""
    tf = _tf()
    module = tf.Module()
    module.v = tf.Variable(1.0)
    tf.saved_model.save(module, os.fspath(path))
    return os.fspath(path)


def conv_fcn_weights(rf=5, channels=4, seed=0, floats=False):
    """Kernels and biases of :func:`build_conv_fcn`: a list of ``(kernel HWIO, bias)`` integer float32 arrays.

    ``(rf - 1) / 2`` valid 3x3 convolutions (ReLU between them) then a 1x1 convolution to 2 bands; for
    ``rf == 1`` only the 1x1 convolution. Weights are in {-1, 0, 1} and biases in [-2, 2]; with ``floats``,
    they are scaled by random float32 factors (a real float network: results exact to rounding only).
    """
    if rf < 1 or rf % 2 == 0:
        raise ValueError(f"rf = {rf}: expected an odd receptive field >= 1")
    rng = np.random.default_rng(seed)
    layers, c_in = [], channels
    for _ in range((rf - 1) // 2):
        kernel = rng.integers(-1, 2, size=(3, 3, c_in, 4)).astype(np.float32)
        layers.append((kernel, rng.integers(-2, 3, size=4).astype(np.float32)))
        c_in = 4
    kernel = rng.integers(-1, 2, size=(1, 1, c_in, 2)).astype(np.float32)
    layers.append((kernel, rng.integers(-2, 3, size=2).astype(np.float32)))
    if floats:
        layers = [(k * rng.uniform(0.1, 1.0, k.shape).astype(np.float32), b * np.float32(0.37)) for k, b in layers]
    return layers


def conv_fcn_numpy(x, rf=5, channels=4, seed=0):
    """What :func:`build_conv_fcn`'s model computes, in NumPy: ``x`` ``[N,H,W,C]`` -> ``[N,H-rf+1,W-rf+1,2]``."""
    layers = conv_fcn_weights(rf, channels, seed)
    h = np.asarray(x, np.float64)
    for i, (kernel, bias) in enumerate(layers):
        kh, kw = kernel.shape[:2]
        rows, cols = h.shape[1] - kh + 1, h.shape[2] - kw + 1
        out = np.zeros(h.shape[:1] + (rows, cols, kernel.shape[3]))
        for dy in range(kh):
            for dx in range(kw):
                out += h[:, dy:dy + rows, dx:dx + cols, :] @ kernel[dy, dx]
        h = out + bias
        if i < len(layers) - 1:
            h = np.maximum(h, 0)
    return h.astype(np.float32)


def build_conv_fcn(path, rf=5, channels=4, seed=0, floats=False):
    """A small fully-convolutional Keras 3 net, exported with ``model.export``; its receptive field is ``rf``.

    Input ``x`` ``[?,?,?,channels]``, output key ``y`` ``[?,?,?,2]``: ``(rf - 1) / 2`` valid 3x3 convolutions
    with ReLU, then a 1x1 convolution (an input of h x w pixels gives (h-rf+1) x (w-rf+1) outputs; RF = ``rf``,
    EF = 1). Weights are small integers (:func:`conv_fcn_weights`), so float32 results are exact while
    partial sums stay below 2**24: for integer inputs in [-m, m] and n = (rf-1)/2 >= 1 convolutions, they are
    bounded by about ``m * 9 * channels * 36 ** (n - 1) * 4`` (rf = 5, 4 channels: exact for m < 3000).
    :func:`conv_fcn_numpy` computes the same in NumPy.
    """
    conv_fcn_keras(rf, channels, seed, floats).export(os.fspath(path), verbose=False)
    return os.fspath(path)


def conv_fcn_keras(rf=5, channels=4, seed=0, floats=False):
    """The Keras 3 model of :func:`build_conv_fcn` (input ``x``, output dict key ``y``), not saved."""
    _tf()
    import keras

    layers = conv_fcn_weights(rf, channels, seed, floats)
    x = keras.Input(shape=(None, None, channels), name="x")
    h = x
    for i, (kernel, _bias) in enumerate(layers):
        last = i == len(layers) - 1
        conv = keras.layers.Conv2D(kernel.shape[3], kernel.shape[0], padding="valid",
                                   activation=None if last else "relu", name=f"conv{i}")
        h = conv(h)
    model = keras.Model({"x": x}, {"y": h})
    for i, (kernel, bias) in enumerate(layers):
        model.get_layer(f"conv{i}").set_weights([kernel, bias])
    return model


def build_tf1_trainable(path, channels=2, classes=2, seed=0):
    """A TF1 pixel classifier to train with TensorflowModelTrain: a 1x1 convolution and a softmax.

    Placeholders ``x`` (float32 ``[?,?,?,channels]``), training-only ``y`` (int32 labels ``[?,?,?,1]``) and ``lr``
    (float32 scalar); outputs ``prediction`` (int32 ``[?,?,?]``, the argmax) and ``loss``; node ``optimizer``
    (Adam); node ``count`` adds the batch size to the variable ``seen`` (samples fed so far); a Saver, so the
    SavedModel's MetaGraph has a ``saver_def``. Signature keys are the names.
    """
    tf = _tf()
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.set_random_seed(seed)
        x = tf.compat.v1.placeholder(tf.float32, [None, None, None, channels], name="x")
        y = tf.compat.v1.placeholder(tf.int32, [None, None, None, 1], name="y")
        lr = tf.compat.v1.placeholder(tf.float32, [], name="lr")
        kernel = tf.compat.v1.get_variable("kernel", [1, 1, channels, classes],
                                           initializer=tf.compat.v1.random_normal_initializer(seed=seed))
        bias = tf.compat.v1.get_variable("bias", [classes], initializer=tf.compat.v1.zeros_initializer())
        logits = tf.nn.conv2d(x, kernel, 1, "VALID") + bias
        prediction = tf.argmax(logits, -1, output_type=tf.int32, name="prediction")
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y[..., 0], logits=logits),
                              name="loss")
        tf.compat.v1.train.AdamOptimizer(lr).minimize(loss, name="optimizer")
        seen = tf.compat.v1.get_variable("seen", [], tf.int32, initializer=tf.compat.v1.zeros_initializer(),
                                         trainable=False)
        tf.group(seen.assign_add(tf.shape(x)[0]), name="count")
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            tf.compat.v1.saved_model.simple_save(session, os.fspath(path), inputs={"x": x, "y": y, "lr": lr},
                                                 outputs={"prediction": prediction, "loss": loss})
    return os.fspath(path)
