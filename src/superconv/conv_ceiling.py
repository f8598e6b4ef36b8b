"""The convolutions alone: an upper bound on how fast any implementation of the training step can be.

A ResNet training step is its convolutions (forward, gradient of the input, gradient of the weight)
plus everything else (batch norm, ReLU, adds, pooling, the loss, the optimizer, the data). Timing only
the convolutions, each layer's exact shape in the step's precision and memory format, with the same
library kernels the step uses and nothing else in between, gives the fastest a step could possibly go
on this machine without a different convolution algorithm or number format. `make bench` prints it
beside the project and the reference so that a ratio target can be checked against what the hardware
allows (on the 2-core AVX2 development CPU, fp32: see the bench records in results/bench/).

The bound is optimistic on purpose: tensors of one shape are reused across the layers that share it, so
they stay in cache more than in a real step.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F


def conv_shapes(model: torch.nn.Module, batch: int, image_size: int = 32) -> list[tuple[torch.nn.Conv2d, tuple]]:
    """Every Conv2d of `model` in forward order, with the input shape it sees at this batch size."""
    seen: list[tuple[torch.nn.Conv2d, tuple]] = []
    hooks = [m.register_forward_hook(lambda mod, inp, out: seen.append((mod, tuple(inp[0].shape))))
             for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(batch, 3, image_size, image_size))
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return seen


def conv_only_step(model: torch.nn.Module, batch: int, device: torch.device,
                   dtype: torch.dtype) -> Callable[[int], object]:
    """A step function that runs exactly the convolutions of one training step of `model`, nothing else.

    channels_last and `dtype` as the project path computes (autocast casts convolutions to bf16).
    """
    layers = conv_shapes(model, batch)
    mf = torch.channels_last
    tensors: dict[tuple, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
    plan = []
    for i, (conv, shape) in enumerate(layers):
        key = (shape, tuple(conv.weight.shape), conv.stride, conv.padding)
        if key not in tensors:
            x = torch.randn(shape, device=device, dtype=dtype).contiguous(memory_format=mf)
            wt = torch.randn(conv.weight.shape, device=device, dtype=dtype).contiguous(memory_format=mf)
            out = F.conv2d(x, wt, None, conv.stride, conv.padding)
            tensors[key] = (x, wt, torch.randn_like(out))
        x, wt, g = tensors[key]
        bias = None if conv.bias is None else torch.zeros(conv.out_channels, device=device, dtype=dtype)
        plan.append((x, wt, g, bias, conv, [i > 0, True, bias is not None]))

    def step(_it: int) -> None:
        for x, wt, g, bias, conv, mask in plan:
            F.conv2d(x, wt, bias, conv.stride, conv.padding)
            torch.ops.aten.convolution_backward(g, x, wt, None if bias is None else [conv.out_channels],
                                                list(conv.stride), list(conv.padding), [1, 1], False, [0, 0], 1,
                                                mask)

    return step
