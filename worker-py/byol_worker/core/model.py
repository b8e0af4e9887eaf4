"""BYOL networks in plain PyTorch: ResNet encoders, MLP heads, online/target pair (docs/algorithm.md §1).

Parameter and buffer names follow torchvision's ResNet (conv1, bn1, layer1.0.conv1, ...,
layer2.0.downsample.0/1), so an exported ImageNet-stem encoder loads into torchvision's
resnet18/resnet50 with strict=False and only `fc.*` missing.
"""
from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

BN_EPS = 1e-5
BN_MOMENTUM = 0.1  # PyTorch convention; = decay 0.9 in the official Haiku config

BACKBONES = ("resnet18", "resnet50", "resnet18-cifar", "resnet50-cifar")


def _bn(ch: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(ch, eps=BN_EPS, momentum=BN_MOMENTUM)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = _bn(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = _bn(planes)
        self.downsample = downsample

    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """ResNet v1.5 bottleneck: stride on the 3x3 conv, as torchvision and Haiku's BlockV1."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = _bn(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = _bn(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = _bn(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


_LAYOUT = {"resnet18": (BasicBlock, (2, 2, 2, 2)), "resnet50": (Bottleneck, (3, 4, 6, 3))}


class ResNet(nn.Module):
    """ResNet torso without the classifier; forward returns the pooled flat representation.

    `cifar=True` swaps the stem for a 3x3 stride-1 conv (padding 1) and drops the max-pool.
    `width` scales every channel count (at least 1 channel).
    """

    def __init__(self, depth: str, cifar: bool = False, width: float = 1.0, zero_init_residual: bool = False):
        super().__init__()
        if depth not in _LAYOUT:
            raise ValueError(f"model.backbone: unknown ResNet '{depth}', expected one of {sorted(_LAYOUT)}")
        if not width > 0:
            raise ValueError(f"model.width: must be > 0, got {width}")
        block, counts = _LAYOUT[depth]
        widths = [max(1, int(round(c * width))) for c in (64, 128, 256, 512)]
        self.inplanes = widths[0]
        if cifar:
            self.conv1 = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
        else:
            self.conv1 = nn.Conv2d(3, widths[0], 7, 2, 3, bias=False)
        self.bn1 = _bn(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.Identity() if cifar else nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._make_layer(block, widths[0], counts[0], 1)
        self.layer2 = self._make_layer(block, widths[1], counts[1], 2)
        self.layer3 = self._make_layer(block, widths[2], counts[2], 2)
        self.layer4 = self._make_layer(block, widths[3], counts[3], 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.out_dim = widths[3] * block.expansion
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, (BasicBlock, Bottleneck)):
                    nn.init.zeros_(m.last_bn().weight)

    def _make_layer(self, block: type, planes: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                _bn(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)


def build_encoder(backbone: str, width: float = 1.0, zero_init_residual: bool = False) -> ResNet:
    if backbone not in BACKBONES:
        raise ValueError(f"model.backbone: unknown backbone '{backbone}', expected one of {list(BACKBONES)}")
    depth, _, variant = backbone.partition("-")
    return ResNet(depth, cifar=variant == "cifar", width=width, zero_init_residual=zero_init_residual)


class MLPHead(nn.Sequential):
    """Linear(bias) -> BN1d -> ReLU -> Linear(no bias): the official bias layout [DM networks.py MLP]."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int):
        super().__init__(
            nn.Linear(in_dim, hidden_dim, bias=True),
            nn.BatchNorm1d(hidden_dim, eps=BN_EPS, momentum=BN_MOMENTUM),
            nn.ReLU(inplace=True),
            nn.Linear(hidden_dim, out_dim, bias=False),
        )


class OnlineNetwork(nn.Module):
    """encoder -> projector -> predictor over both views in ONE call.

    One call per micro-batch lets DDP see a single forward before backward, while each view still
    goes through its own forward, so BN statistics stay per view as in the official code [spec §6].
    Returns (p1, p2, z1, z2): predictions and online projections of view 1 and view 2.
    """

    def __init__(self, encoder: nn.Module, projector: nn.Module, predictor: nn.Module):
        super().__init__()
        self.encoder, self.projector, self.predictor = encoder, projector, predictor

    def forward(self, v1: torch.Tensor, v2: torch.Tensor):
        z1 = self.projector(self.encoder(v1))
        z2 = self.projector(self.encoder(v2))
        return self.predictor(z1), self.predictor(z2), z1, z2


class BYOLModel(nn.Module):
    """Online encoder+projector+predictor and a target encoder+projector (deep copy at init)."""

    def __init__(self, encoder: ResNet, projector_hidden: int, projector_out: int, predictor_hidden: int):
        super().__init__()
        self.online_encoder = encoder
        self.online_projector = MLPHead(encoder.out_dim, projector_hidden, projector_out)
        self.predictor = MLPHead(projector_out, predictor_hidden, projector_out)
        self.target_encoder = copy.deepcopy(self.online_encoder)
        self.target_projector = copy.deepcopy(self.online_projector)
        for p in self.target_parameters():
            p.requires_grad_(False)

    def online_network(self) -> OnlineNetwork:
        """A module over the online parts (shares their parameters; wrap this one in DDP)."""
        return OnlineNetwork(self.online_encoder, self.online_projector, self.predictor)

    def online_parameters(self) -> list[torch.nn.Parameter]:
        mods = (self.online_encoder, self.online_projector, self.predictor)
        return [p for m in mods for p in m.parameters()]

    def target_parameters(self) -> list[torch.nn.Parameter]:
        return list(self.target_encoder.parameters()) + list(self.target_projector.parameters())

    def target_forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.target_projector(self.target_encoder(x))

    @torch.no_grad()
    def update_target(self, tau: float | torch.Tensor) -> None:
        """xi <- tau*xi + (1-tau)*theta over parameters only; BN buffers stay the target's own.
        tau may be a 0-d tensor on the device (what a captured CUDA graph reads, step.py)."""
        online = list(self.online_encoder.parameters()) + list(self.online_projector.parameters())
        target = self.target_parameters()
        if isinstance(tau, torch.Tensor):
            torch._foreach_mul_(target, tau)
            torch._foreach_add_(target, torch._foreach_mul(online, 1.0 - tau))
        else:  # lerp(t, o, w) = t + w*(o - t) = tau*t + (1-tau)*o with w = 1 - tau
            torch._foreach_lerp_(target, online, 1.0 - float(tau))


def build_model(model_cfg: dict[str, Any], image_size: int | None = None) -> BYOLModel:
    """Build from the resolved spec's `spec.model` section.

    `image_size` is accepted for the trainer's convenience; ResNets pool globally, so the
    architecture does not depend on it (the CIFAR stem is chosen by the backbone name).
    """
    projector = model_cfg.get("projector", {})
    predictor = model_cfg.get("predictor", {})
    encoder = build_encoder(
        model_cfg.get("backbone", "resnet50"),
        float(model_cfg.get("width", 1.0)),
        bool(model_cfg.get("zeroInitResidual", False)),
    )
    return BYOLModel(
        encoder,
        int(projector.get("hiddenDim", 4096)),
        int(projector.get("outDim", 256)),
        int(predictor.get("hiddenDim", 4096)),
    )
