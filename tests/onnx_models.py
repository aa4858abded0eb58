"""Builders of real ONNX graphs for the tests (onnx.helper; nothing downloaded).

Each ``onnx_xxx(path, ...)`` writes one ``.onnx`` file and returns its path as a string. ``onnx_conv`` is the
NCHW twin of ``models.build_conv_fcn`` (same integer weights), so both runtimes can be compared byte for byte.
"""

from __future__ import annotations

import os

import numpy as np

from models import conv_fcn_weights

OPSET = 17


def _save(graph, path):
    import onnx
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8  # what every ONNX Runtime of the last years reads
    onnx.checker.check_model(model)
    onnx.save(model, os.fspath(path))
    return os.fspath(path)


def _tensor(name, shape, elem=None):
    from onnx import TensorProto, helper

    return helper.make_tensor_value_info(name, elem or TensorProto.FLOAT, shape)


def onnx_add_one(path, channels=4):
    """NHWC ``y = x + 1``: input ``x`` ``[N, H, W, channels]``."""
    from onnx import helper, numpy_helper

    one = numpy_helper.from_array(np.ones(1, np.float32), "one")
    graph = helper.make_graph([helper.make_node("Add", ["x", "one"], ["y"])], "add_one",
                              [_tensor("x", ["N", "H", "W", channels])], [_tensor("y", ["N", "H", "W", channels])],
                              [one])
    return _save(graph, path)


def onnx_conv(path, rf=5, channels=4, seed=0, declared_channels=True, floats=False):
    """NCHW fully-convolutional net with ``models.conv_fcn_weights``: input ``x`` ``[N, channels, H, W]``, output
    ``y`` ``[N, 2, H - rf + 1, W - rf + 1]``. ``declared_channels=False`` leaves the channel dimension symbolic."""
    from onnx import helper, numpy_helper

    nodes, initializers, h = [], [], "x"
    layers = conv_fcn_weights(rf, channels, seed, floats)
    for i, (kernel, bias) in enumerate(layers):
        initializers += [numpy_helper.from_array(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)), f"w{i}"),
                         numpy_helper.from_array(bias, f"b{i}")]
        out = "y" if i == len(layers) - 1 else f"c{i}"
        nodes.append(helper.make_node("Conv", [h, f"w{i}", f"b{i}"], [out]))
        if out != "y":
            nodes.append(helper.make_node("Relu", [out], [f"r{i}"]))
            out = f"r{i}"
        h = out
    graph = helper.make_graph(nodes, "conv", [_tensor("x", ["N", channels if declared_channels else "C", "H", "W"])],
                              [_tensor("y", ["N", 2, "h", "w"])], initializers)
    return _save(graph, path)


def onnx_patch_sum(path, channels=3, patch=5):
    """NCHW patch-based: input ``x`` ``[N, channels, patch, patch]`` -> ``y`` ``[N, channels]``, the sum of
    each band over the patch."""
    from onnx import helper, numpy_helper

    axes = numpy_helper.from_array(np.array([2, 3], np.int64), "axes")
    graph = helper.make_graph([helper.make_node("ReduceSum", ["x", "axes"], ["y"], keepdims=0)], "patch_sum",
                              [_tensor("x", ["N", channels, patch, patch])], [_tensor("y", ["N", channels])], [axes])
    return _save(graph, path)


def onnx_difference(path):
    """Two inputs declared ``b`` then ``a`` (not alphabetical): ``y = b - a``, NHWC one band each."""
    from onnx import helper

    graph = helper.make_graph([helper.make_node("Sub", ["b", "a"], ["y"])], "difference",
                              [_tensor("b", ["N", "H", "W", 1]), _tensor("a", ["N", "H", "W", 1])],
                              [_tensor("y", ["N", "H", "W", 1])])
    return _save(graph, path)


def onnx_add_bias(path, channels=3):
    """NCHW ``y = x + b`` with a rank-4 user placeholder ``b`` ``[1, channels, 1, 1]`` (in the model's layout)."""
    from onnx import helper

    graph = helper.make_graph([helper.make_node("Add", ["x", "b"], ["y"])], "add_bias",
                              [_tensor("x", ["N", channels, "H", "W"]), _tensor("b", [1, channels, 1, 1])],
                              [_tensor("y", ["N", channels, "H", "W"])])
    return _save(graph, path)


def onnx_uint8_identity(path, batch="N", patch=None):
    """NHWC uint8 input ``x`` ``[batch, patch or ?, patch or ?, 1]`` -> float ``y = x`` (a Cast)."""
    from onnx import TensorProto, helper

    side = patch or "H"
    graph = helper.make_graph([helper.make_node("Cast", ["x"], ["y"], to=TensorProto.FLOAT)], "cast",
                              [_tensor("x", [batch, side, patch or "W", 1], TensorProto.UINT8)],
                              [_tensor("y", [batch, side, patch or "W", 1])])
    return _save(graph, path)
