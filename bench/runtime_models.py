"""The talk's four rounds (NHWC, 4 channels declared) and the U-Net (NCHW) as ONNX graphs and PyTorch programs.

Same inputs (``x`` or ``x1``/``x2``) and output (``y``) as the SavedModels of ``eotensor.samples``, so the
same command lines serve them; only ``-model.dir`` changes.
"""

from __future__ import annotations

import os

import numpy as np


def build_onnx_round(name: str, path: str | os.PathLike) -> str:
    """Round ``name`` (r1..r4) as an ONNX graph."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    def tensor(key: str, channels: int | str) -> object:
        return helper.make_tensor_value_info(key, TensorProto.FLOAT, ["N", "H", "W", channels])

    axes = numpy_helper.from_array(np.array([-1], np.int64), "axes")
    one = numpy_helper.from_array(np.ones(1, np.float32), "one")
    if name == "r1":
        nodes, inputs, out, init = [helper.make_node("Add", ["x", "one"], ["y"])], [tensor("x", 4)], 4, [one]
    elif name == "r2":
        nodes = [helper.make_node("Mul", ["x", "x"], ["sq"]), helper.make_node("ReduceSum", ["sq", "axes"], ["s"]),
                 helper.make_node("Sqrt", ["s"], ["y"])]
        inputs, out, init = [tensor("x", 4)], 1, [axes]
    elif name == "r3":
        nodes = [helper.make_node("Mul", ["x1", "x2"], ["p"]), helper.make_node("ReduceSum", ["p", "axes"], ["y"])]
        inputs, out, init = [tensor("x1", 4), tensor("x2", 4)], 1, [axes]
    else:
        nodes = [helper.make_node("ReduceSum", ["x2", "axes"], ["s"]), helper.make_node("Mul", ["x1", "s"], ["y"])]
        inputs, out, init = [tensor("x1", 4), tensor("x2", 4)], 4, [axes]
    graph = helper.make_graph(nodes, name, inputs, [tensor("y", out)], init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, os.fspath(path))
    return os.fspath(path)


def build_torch_round(name: str, path: str | os.PathLike) -> str:
    """Round ``name`` (r1..r4) as a ``torch.export`` program with dynamic batch, rows and columns."""
    import torch

    class One(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + 1 if name == "r1" else torch.sqrt((x * x).sum(-1, keepdim=True))

    class Two(torch.nn.Module):
        def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
            return (x1 * x2).sum(-1, keepdim=True) if name == "r3" else x1 * x2.sum(-1, keepdim=True)

    module = One() if name in ("r1", "r2") else Two()
    count = 1 if name in ("r1", "r2") else 2
    dims = {0: torch.export.Dim("n"), 1: torch.export.Dim("rows", min=1), 2: torch.export.Dim("cols", min=1)}
    example = tuple(torch.zeros(2, 9, 10, 4) for _ in range(count))
    program = torch.export.export(module.eval(), example, dynamic_shapes=tuple(dims for _ in range(count)))
    torch.export.save(program, os.fspath(path))
    return os.fspath(path)


# The benchmark's U-Net (bench/cases.py ``unet_keras``) through ONNX Runtime and PyTorch, with the SavedModel's
# own weights. The network, layer by layer: Rescaling(1/10000); two 3x3 "same" Conv+ReLU per block; encoder
# e1 (24) -> MaxPool -> e2 (48) -> MaxPool -> e3 (96); decoder d2 = block(concat(up(e3), e2)) (48), d1 =
# block(concat(up(d2), e1)) (24), where up is nearest 2x (UpSampling2D); 1x1 conv (3) + softmax over channels;
# a 16-pixel crop per side. Both rebuilds are NCHW: input "x" [N, 4, H, W], output "y" [N, 3, H - 32, W - 32].

UNET_CONVS = 11
"""Convolutions of the U-Net, in construction order (Keras names conv2d, conv2d_1 ... conv2d_10)."""
UNET_SCALE = 1 / 10000
UNET_CROP = 16
UNET_STEP = 4
"""Rows and columns of the input must be multiples of 4 (two 2x2 poolings, then concatenations)."""
UNET_MIN = 9 * UNET_STEP
"""The smallest input side with an output (36 - 2 x 16 = 4 pixels)."""


def unet_weights(source: object) -> list[tuple[np.ndarray, np.ndarray]]:
    """The U-Net's (kernel HWIO, bias) pairs in construction order, from a Keras model, a SavedModel path or
    such a list of pairs."""
    if isinstance(source, list):
        pairs = source
    elif isinstance(source, (str, os.PathLike)):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        import tensorflow as tf

        variables = {v.name.split(":")[0]: v.numpy() for v in tf.saved_model.load(os.fspath(source)).variables}
        layers = sorted({name.rsplit("/", 1)[0] for name in variables},
                        key=lambda n: int(n.rsplit("_", 1)[1]) if "_" in n.removeprefix("conv2d") else 0)
        pairs = [(variables[f"{n}/kernel"], variables[f"{n}/bias"]) for n in layers]
    else:  # a Keras model: its Conv2D layers in the order they were built
        convs = [layer for layer in source.layers if type(layer).__name__ == "Conv2D"]
        pairs = [(np.asarray(layer.kernel), np.asarray(layer.bias)) for layer in convs]
    shapes = [k.shape for k, _ in pairs]
    expected = [(3, 3, 4, 24), (3, 3, 24, 24), (3, 3, 24, 48), (3, 3, 48, 48), (3, 3, 48, 96), (3, 3, 96, 96),
                (3, 3, 144, 48), (3, 3, 48, 48), (3, 3, 72, 24), (3, 3, 24, 24), (1, 1, 24, 3)]
    if shapes != expected:
        raise ValueError(f"not the benchmark U-Net: kernels {shapes}, expected {expected}")
    return [(k.astype(np.float32), b.astype(np.float32)) for k, b in pairs]


def build_onnx_unet(source: object, path: str | os.PathLike) -> str:
    """The U-Net as an ONNX graph (NCHW, free N/H/W) with the weights of ``source`` (SavedModel path, Keras
    model or :func:`unet_weights` list), checked against ``source`` with :func:`check_unet` when ``source`` is
    a SavedModel."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = unet_weights(source)
    init, nodes = [], []

    def const(name: str, value: np.ndarray) -> str:
        init.append(numpy_helper.from_array(value, name))
        return name

    const("scale", np.array(UNET_SCALE, np.float32))
    const("scales", np.array([1, 1, 2, 2], np.float32))
    const("crop_starts", np.array([UNET_CROP, UNET_CROP], np.int64))
    const("crop_ends", np.array([-UNET_CROP, -UNET_CROP], np.int64))
    const("crop_axes", np.array([2, 3], np.int64))
    counter = iter(range(UNET_CONVS))

    def conv(t: str, relu: bool = True) -> str:
        i = next(counter)
        kernel, bias = weights[i]
        w = const(f"conv{i}_w", np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))  # HWIO -> OIHW
        b = const(f"conv{i}_b", bias)
        pad = kernel.shape[0] // 2
        out = f"conv{i}"
        nodes.append(helper.make_node("Conv", [t, w, b], [out], kernel_shape=list(kernel.shape[:2]),
                                      pads=[pad] * 4, strides=[1, 1]))
        if relu:
            nodes.append(helper.make_node("Relu", [out], [f"relu{i}"]))
            return f"relu{i}"
        return out

    def block(t: str) -> str:
        return conv(conv(t))

    def pool(t: str) -> str:
        nodes.append(helper.make_node("MaxPool", [t], [f"{t}_pool"], kernel_shape=[2, 2], strides=[2, 2]))
        return f"{t}_pool"

    def up_cat(t: str, skip: str) -> str:
        nodes.append(helper.make_node("Resize", [t, "", "scales"], [f"{t}_up"], mode="nearest",
                                      coordinate_transformation_mode="asymmetric", nearest_mode="floor"))
        nodes.append(helper.make_node("Concat", [f"{t}_up", skip], [f"{t}_cat"], axis=1))
        return f"{t}_cat"

    nodes.append(helper.make_node("Mul", ["x", "scale"], ["x_scaled"]))
    e1 = block("x_scaled")
    e2 = block(pool(e1))
    e3 = block(pool(e2))
    d2 = block(up_cat(e3, e2))
    d1 = block(up_cat(d2, e1))
    logits = conv(d1, relu=False)
    nodes.append(helper.make_node("Softmax", [logits], ["probs"], axis=1))
    nodes.append(helper.make_node("Slice", ["probs", "crop_starts", "crop_ends", "crop_axes"], ["y"]))
    graph = helper.make_graph(
        nodes, "unet", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, "H", "W"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, "H_out", "W_out"])], init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, os.fspath(path))
    if isinstance(source, (str, os.PathLike)):
        check_unet(os.fspath(source), os.fspath(path))
    return os.fspath(path)


def _torch_unet(weights: list[tuple[np.ndarray, np.ndarray]]) -> object:
    """The U-Net as an NCHW ``torch.nn.Module`` returning ``{"y": probabilities}``, weights copied."""
    import torch
    from torch import nn
    from torch.nn import functional

    class UNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.convs = nn.ModuleList()
            for kernel, bias in weights:
                size, _, c_in, c_out = kernel.shape
                layer = nn.Conv2d(c_in, c_out, size, padding=size // 2)
                with torch.no_grad():
                    layer.weight.copy_(torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))))
                    layer.bias.copy_(torch.from_numpy(bias))
                self.convs.append(layer)

        def block(self, t: torch.Tensor, i: int) -> torch.Tensor:
            t = functional.relu(self.convs[i](t))
            return functional.relu(self.convs[i + 1](t))

        def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            e1 = self.block(x * UNET_SCALE, 0)
            e2 = self.block(functional.max_pool2d(e1, 2), 2)
            e3 = self.block(functional.max_pool2d(e2, 2), 4)
            up3 = e3.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
            d2 = self.block(torch.cat([up3, e2], dim=1), 6)
            up2 = d2.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
            d1 = self.block(torch.cat([up2, e1], dim=1), 8)
            probs = torch.softmax(self.convs[10](d1), dim=1)
            return {"y": probs[:, :, UNET_CROP:-UNET_CROP, UNET_CROP:-UNET_CROP]}

    return UNet().eval()


def build_torch_unet(source: object, path: str | os.PathLike) -> str:
    """The U-Net as a ``torch.export`` program (NCHW; batch free, rows and columns multiples of 4 from 36) with
    the weights of ``source`` (as for :func:`build_onnx_unet`), checked like :func:`build_onnx_unet`."""
    import torch

    module = _torch_unet(unet_weights(source))
    rows = torch.export.Dim("rows", min=UNET_MIN // UNET_STEP)
    cols = torch.export.Dim("cols", min=UNET_MIN // UNET_STEP)
    dims = {"x": {0: torch.export.Dim("n"), 2: UNET_STEP * rows, 3: UNET_STEP * cols}}
    example = (torch.zeros(2, 4, 128, 96),)
    program = torch.export.export(module, example, dynamic_shapes=dims)
    torch.export.save(program, os.fspath(path))
    if isinstance(source, (str, os.PathLike)):
        check_unet(os.fspath(source), os.fspath(path))
    return os.fspath(path)


def unet_probe(seed: int = 0, shape: tuple[int, int, int, int] = (2, 96, 128, 4)) -> np.ndarray:
    """An NHWC float32 batch of Sentinel-2-like values (0..10000) to compare runtimes on."""
    return np.random.default_rng(seed).uniform(0, 10000, shape).astype(np.float32)


def check_unet(saved_model: str, other: str, rtol: float = 1e-5) -> float:
    """Run the ONNX graph or ``.pt2`` program ``other`` and the SavedModel on :func:`unet_probe`; raise unless
    every output agrees within ``rtol`` of the largest output value; return the largest difference."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    x = unet_probe()
    loaded = tf.saved_model.load(saved_model)  # kept referenced: its functions use its variables
    want = loaded.serve({"x": tf.constant(x)})["y"].numpy()
    nchw = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    if other.endswith(".onnx"):
        import onnxruntime

        got = onnxruntime.InferenceSession(other, providers=["CPUExecutionProvider"]).run(["y"], {"x": nchw})[0]
    else:
        import torch

        with torch.inference_mode():
            got = torch.export.load(other).module()(torch.from_numpy(nchw))["y"].numpy()
    got = got.transpose(0, 2, 3, 1)
    if got.shape != want.shape:
        raise AssertionError(f"{other}: output shape {got.shape}, the SavedModel's {want.shape}")
    diff = float(np.abs(got - want).max())
    scale = float(np.abs(want).max())
    print(f"{other}: max |difference| from the SavedModel {diff:.3g} (largest output {scale:.3g})", flush=True)
    if not diff <= rtol * scale:
        raise AssertionError(f"{other}: differs from the SavedModel {saved_model} by {diff:g} (> {rtol:g} x {scale:g})")
    return diff
