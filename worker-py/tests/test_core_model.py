"""ResNet encoders with torchvision names and counts, MLP heads, target copy and EMA."""
import copy

import pytest
import torch
from torch import nn

from byol_worker.core.model import MLPHead, build_encoder, build_model

torch.set_num_threads(1)


def _count(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("backbone,with_fc", [("resnet18", 11_689_512), ("resnet50", 25_557_032)])
def test_parameter_counts_match_torchvision(backbone, with_fc):
    enc = build_encoder(backbone)
    fc = enc.out_dim * 1000 + 1000
    assert _count(enc) + fc == with_fc


def test_torchvision_state_dict_names():
    sd18 = build_encoder("resnet18").state_dict()
    sd50 = build_encoder("resnet50").state_dict()
    # torchvision's resnet18/50 state dicts hold 122 / 320 entries including fc.weight and fc.bias
    assert len(sd18) == 120 and len(sd50) == 318
    for k in ["conv1.weight", "bn1.running_mean", "bn1.num_batches_tracked", "layer1.0.conv1.weight",
              "layer2.0.downsample.0.weight", "layer2.0.downsample.1.running_var", "layer4.1.bn2.bias"]:
        assert k in sd18, k
    assert "layer1.0.downsample.0.weight" not in sd18
    assert sd18["conv1.weight"].shape == (64, 3, 7, 7)
    for k in ["layer1.0.downsample.0.weight", "layer4.2.conv3.weight", "layer3.5.bn3.weight"]:
        assert k in sd50, k
    assert sd50["layer4.0.conv2.weight"].shape == (512, 512, 3, 3)  # stride on the 3x3 (v1.5)
    assert not any(k.startswith("fc.") for k in sd50)


def test_cifar_stem_width_and_output():
    enc = build_encoder("resnet18-cifar", width=0.125)
    assert enc.conv1.weight.shape == (8, 3, 3, 3) and enc.conv1.stride == (1, 1) and enc.conv1.padding == (1, 1)
    assert isinstance(enc.maxpool, nn.Identity)
    assert enc.out_dim == 64
    out = enc(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 64)
    tiny = build_encoder("resnet50-cifar", width=0.001)  # channels floor at 1
    assert tiny.conv1.out_channels == 1 and tiny.out_dim == 4
    assert build_encoder("resnet50", width=0.5).out_dim == 1024


def test_zero_init_residual_and_bn_config():
    enc = build_encoder("resnet18", zero_init_residual=True)
    assert torch.all(enc.layer1[0].bn2.weight == 0) and torch.all(enc.layer1[0].bn1.weight == 1)
    enc50 = build_encoder("resnet50", width=0.25, zero_init_residual=True)
    assert torch.all(enc50.layer3[1].bn3.weight == 0)
    assert enc.bn1.eps == 1e-5 and enc.bn1.momentum == 0.1


def test_mlp_head_bias_layout():
    head = MLPHead(8, 16, 4)
    assert head[0].bias is not None and isinstance(head[1], nn.BatchNorm1d)
    assert isinstance(head[2], nn.ReLU) and head[3].bias is None


def test_unknown_backbone_names_field():
    with pytest.raises(ValueError, match="model.backbone"):
        build_model({"backbone": "vit"}, 32)


def _tiny():
    return build_model({"backbone": "resnet18-cifar", "width": 0.0625,
                        "projector": {"hiddenDim": 16, "outDim": 8}, "predictor": {"hiddenDim": 12}}, 32)


def test_build_model_target_is_frozen_copy():
    m = _tiny()
    assert m.online_projector[0].out_features == 16 and m.predictor[0].in_features == 8
    assert m.predictor[0].out_features == 12
    for o, t in zip(m.online_encoder.parameters(), m.target_encoder.parameters()):
        assert torch.equal(o, t) and o is not t and not t.requires_grad and o.requires_grad
    assert not hasattr(m, "target_predictor")


def test_update_target_is_ema_of_parameters_only():
    m = _tiny()
    with torch.no_grad():
        for p in m.online_parameters():
            p.fill_(1.0)
        for p in m.target_parameters():
            p.fill_(0.0)
        m.online_encoder.bn1.running_mean.fill_(5.0)
    before = copy.deepcopy(m.target_encoder.bn1.running_mean)
    m.update_target(0.9)
    for p in m.target_parameters():
        torch.testing.assert_close(p, torch.full_like(p, 0.1))  # 0.9*0 + 0.1*1
    m.update_target(0.5)
    for p in m.target_parameters():
        torch.testing.assert_close(p, torch.full_like(p, 0.55))  # 0.5*0.1 + 0.5*1
    assert torch.equal(m.target_encoder.bn1.running_mean, before)  # buffers are not averaged
    assert all(p.grad is None for p in m.target_parameters())


def test_online_network_shares_parameters_and_views():
    m = _tiny()
    net = m.online_network()
    assert {id(p) for p in net.parameters()} == {id(p) for p in m.online_parameters()}
    v1, v2 = torch.randn(4, 3, 32, 32), torch.randn(4, 3, 32, 32)
    p1, p2, z1, z2 = net(v1, v2)
    assert p1.shape == z1.shape == (4, 8)
    # train mode: each view is normalised with its own batch statistics, never the concatenation's
    torch.testing.assert_close(z2, m.online_projector(m.online_encoder(v2)))
    mixed = m.online_projector(m.online_encoder(torch.cat([v1, v2])))[4:]
    assert not torch.allclose(mixed, z2, atol=1e-3)
