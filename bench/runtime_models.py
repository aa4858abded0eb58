"""The talk's four rounds as ONNX graphs and PyTorch programs (NHWC, 4 channels declared), for the benchmark.

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
