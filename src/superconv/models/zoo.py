"""Networks from other libraries, adapted to CIFAR's 32x32 images, for `model=<name>` configs (`_target_`).

torchvision's ImageNet ResNets shrink a 224x224 image 4x in their stem (7x7 conv stride 2, 3x3 max pool stride 2):
on a 32x32 image that leaves 8x8 maps for the first stage and 1x1 for the last. The usual CIFAR adaptation
(e.g. Kuang Liu's pytorch-cifar, the DAWNBench CIFAR ResNets) keeps the resolution: a 3x3 stride-1 stem conv and
no max pool, so the stages see 32, 16, 8 and 4 pixels a side, as the project's own ResNets' 32, 16, 8.
"""

from __future__ import annotations

from torch import nn


def torchvision_resnet18(num_classes: int = 10, zero_init_residual: bool = False) -> nn.Module:
    """torchvision's ResNet-18 (11.2M parameters at 10 classes), random init, for 32x32 inputs: stem conv 3x3
    stride 1 (64 channels, no bias), no max pool. The new stem conv gets torchvision's own init of its convs
    (Kaiming normal, fan_out, ReLU); ``zero_init_residual`` as torchvision's (each block's last BN scale 0)."""
    from torchvision.models import resnet18

    model = resnet18(weights=None, num_classes=num_classes, zero_init_residual=zero_init_residual)
    model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    model.maxpool = nn.Identity()
    return model
