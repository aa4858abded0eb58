"""Builders of real PyTorch programs for the tests: ``torch.export`` (.pt2) and TorchScript (.pt).

``ConvNet`` is the NCHW twin of ``models.build_conv_fcn`` (same integer weights), so TensorFlow, ONNX and
PyTorch can be compared byte for byte.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from models import conv_fcn_weights


class ConvNet(torch.nn.Module):
    """Valid 3x3 convolutions with ReLU, then a 1x1 convolution to 2 bands (RF = ``rf``, EF = 1)."""

    def __init__(self, rf=5, channels=4, seed=0, floats=False):
        super().__init__()
        convs = []
        for kernel, bias in conv_fcn_weights(rf, channels, seed, floats):
            conv = torch.nn.Conv2d(kernel.shape[2], kernel.shape[3], kernel.shape[0])
            conv.weight.data = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))
            conv.bias.data = torch.from_numpy(bias)
            convs.append(conv)
        self.convs = torch.nn.ModuleList(convs)

    def forward(self, x):
        for conv in self.convs[:-1]:
            x = torch.relu(conv(x))
        return {"y": self.convs[-1](x)}


class TupleNet(torch.nn.Module):
    """Two outputs as a tuple: ``x + 1`` and the band sum (NCHW)."""

    def forward(self, x):
        return x + 1, x.sum(1, keepdim=True)


def export_conv(path, rf=5, channels=4, min_size=None, max_size=4096, floats=False):
    """``ConvNet`` through ``torch.export`` with dynamic batch, rows and columns (``min_size``..``max_size``)."""
    lower = min_size or rf + 1  # torch.export specialises an output of one pixel: at least 2
    rows, cols = torch.export.Dim("rows", min=lower, max=max_size), torch.export.Dim("cols", min=lower, max=max_size)
    example = torch.zeros(2, channels, max(lower, 8) + 1, max(lower, 8) + 2)
    program = torch.export.export(ConvNet(rf, channels, floats=floats).eval(), (example,),
                                  dynamic_shapes={"x": {0: torch.export.Dim("batch"), 2: rows, 3: cols}})
    torch.export.save(program, os.fspath(path))
    return os.fspath(path)


def script(path, module):
    """``module`` as TorchScript."""
    torch.jit.script(module.eval()).save(os.fspath(path))
    return os.fspath(path)
