"""LARS (official order and solo-learn clipping) and SGD against hand-computed steps."""
import pytest
import torch
from torch import nn

from byol_worker.core.model import build_model
from byol_worker.core.optim import LARS, build_optimizer, split_params


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 1)
        self.weird_name = nn.BatchNorm1d(1)  # a norm module whose name says nothing


def _tiny(w=(3.0, 4.0), b=1.0):
    m = Tiny()
    with torch.no_grad():
        m.lin.weight.copy_(torch.tensor([w]))
        m.lin.bias.fill_(b)
    return m


def _set_grads(m, gw=(0.3, 0.4), gb=0.5):
    m.lin.weight.grad = torch.tensor([gw])
    m.lin.bias.grad = torch.tensor([gb])


def _lars(m, **kw):
    regular, excluded = split_params([m])
    return LARS([{"params": regular, "adapt": True}, {"params": excluded, "adapt": False, "weight_decay": 0.0}],
                momentum=0.9, **kw)


def test_split_by_module_type():
    m = _tiny()
    regular, excluded = split_params([m])
    assert [id(p) for p in regular] == [id(m.lin.weight)]
    assert {id(p) for p in excluded} == {id(m.lin.bias), id(m.weird_name.weight), id(m.weird_name.bias)}


def test_lars_two_steps_by_hand():
    m = _tiny()
    opt = _lars(m, weight_decay=0.1, eta=0.01)
    for g in opt.param_groups:
        g["lr"] = 2.0
    _set_grads(m)
    opt.step()
    # g = (0.3,0.4) + 0.1*(3,4) = (0.6,0.8), |g| = 1, |p| = 5 -> trust 0.05; mu = (0.03,0.04); p -= 2*mu
    torch.testing.assert_close(m.lin.weight, torch.tensor([[2.94, 3.92]]))
    # bias: excluded -> mu = 0.5, p = 1 - 2*0.5 (no decay, no trust ratio)
    torch.testing.assert_close(m.lin.bias, torch.tensor([0.0]))
    _set_grads(m)
    opt.step()
    # |p| = 4.9, g = (0.594, 0.792), |g| = 0.99 -> trust*g = 0.049*(0.6,0.8) = (0.0294, 0.0392)
    # mu = 0.9*(0.03,0.04) + that = (0.0564, 0.0752); p = (2.94,3.92) - 2*mu
    torch.testing.assert_close(m.lin.weight, torch.tensor([[2.8272, 3.7696]]))
    torch.testing.assert_close(m.lin.bias, torch.tensor([-1.9]))  # mu = 0.45 + 0.5
    assert opt.state[m.lin.weight]["momentum_buffer"].shape == (1, 2)


def test_lars_zero_weight_uses_trust_one():
    m = _tiny(w=(0.0, 0.0))
    opt = _lars(m, weight_decay=0.1, eta=0.01)
    for g in opt.param_groups:
        g["lr"] = 1.0
    _set_grads(m)
    opt.step()
    torch.testing.assert_close(m.lin.weight, torch.tensor([[-0.3, -0.4]]))  # g + wd*0, trust 1


def test_lars_clip_solo_learn_semantics():
    m = _tiny()
    opt = _lars(m, weight_decay=0.1, eta=0.01, clip=True)
    for g in opt.param_groups:
        g["lr"] = 2.0
    _set_grads(m)
    opt.step()
    # trust = 0.01*5/(0.5 + 0.1*5 + 1e-8) ~ 0.05; min(0.05/2, 1) = 0.025; d = (0.6,0.8)*0.025
    torch.testing.assert_close(m.lin.weight, torch.tensor([[3 - 2 * 0.015, 4 - 2 * 0.02]]))
    torch.testing.assert_close(m.lin.bias, torch.tensor([0.0]))
    m2 = _tiny()
    opt2 = _lars(m2, weight_decay=0.1, eta=0.01, clip=True)
    for g in opt2.param_groups:
        g["lr"] = 0.01
    _set_grads(m2)
    opt2.step()
    # trust/lr = 5 -> clipped to 1: plain SGD on g + wd*p
    torch.testing.assert_close(m2.lin.weight, torch.tensor([[3 - 0.01 * 0.6, 4 - 0.01 * 0.8]]))
    m3 = _tiny(w=(0.0, 0.0))
    opt3 = _lars(m3, weight_decay=0.1, eta=0.01, clip=True)
    for g in opt3.param_groups:
        g["lr"] = 0.0  # warmup starts at 0: no division by zero, no movement
    _set_grads(m3)
    opt3.step()
    assert torch.equal(m3.lin.weight, torch.zeros(1, 2))
    torch.testing.assert_close(opt3.state[m3.lin.weight]["momentum_buffer"], torch.tensor([[0.3, 0.4]]))


def _byol():
    return build_model({"backbone": "resnet18-cifar", "width": 0.0625,
                        "projector": {"hiddenDim": 16, "outDim": 8}, "predictor": {"hiddenDim": 16}})


def test_build_optimizer_groups():
    m = _byol()
    opt = build_optimizer(m, {"name": "lars", "weightDecay": 1e-6, "momentum": 0.9, "trustCoefficient": 1e-3,
                              "larsClip": False, "excludeBiasAndNorm": True})
    assert isinstance(opt, LARS)
    reg, exc = opt.param_groups
    assert reg["adapt"] and not exc["adapt"] and exc["weight_decay"] == 0.0
    ids = {id(p) for g in opt.param_groups for p in g["params"]}
    assert ids == {id(p) for p in m.online_parameters()}
    assert id(m.predictor[1].weight) in {id(p) for p in exc["params"]}  # head BN excluded too
    assert id(m.predictor[0].bias) in {id(p) for p in exc["params"]}
    assert not ids & {id(p) for p in m.target_parameters()}
    one = build_optimizer(m, {"name": "lars", "excludeBiasAndNorm": False})
    assert len(one.param_groups) == 1


def test_build_optimizer_sgd_and_errors():
    m = _byol()
    opt = build_optimizer(m, {"name": "sgd", "weightDecay": 5e-4, "momentum": 0.9})
    assert [g["weight_decay"] for g in opt.param_groups] == [5e-4, 0.0]
    assert not any(g["adapt"] for g in opt.param_groups)
    with pytest.raises(ValueError, match="spec.optimizer.name"):
        build_optimizer(m, {"name": "adam"})


def _steps(opt_factory, lrs):
    """Three steps of one optimizer on a fixed toy problem; the parameters after each."""
    torch.manual_seed(0)
    w, b = torch.randn(4, 3, requires_grad=True), torch.randn(4, requires_grad=True)
    opt = opt_factory(w, b)
    out = []
    for i, lr in enumerate(lrs):
        for g in opt.param_groups:
            g["lr"] = lr
        x = torch.randn(5, 3, generator=torch.Generator().manual_seed(i))
        ((x @ w.t() + b) ** 2).sum().backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        out.append((w.detach().clone(), b.detach().clone()))
    return out


def test_sgd_groups_match_torch_sgd_and_a_tensor_lr_matches_a_float():
    """The non-adapted update is torch.optim.SGD's (momentum from zero = torch's first step mu = g), with the
    group's own decay; an LR given as a 0-d tensor (what a CUDA graph reads) gives the same parameters."""
    lrs = [0.1, 0.05, 0.2]
    groups = lambda w, b: [{"params": [w], "weight_decay": 5e-4}, {"params": [b], "weight_decay": 0.0}]
    ref = _steps(lambda w, b: torch.optim.SGD(groups(w, b), lr=0.0, momentum=0.9), lrs)
    ours = _steps(lambda w, b: LARS(groups(w, b), momentum=0.9, adapt=False), lrs)
    tensor_lr = _steps(lambda w, b: LARS(groups(w, b), momentum=0.9, adapt=False), [torch.tensor(x) for x in lrs])
    for (rw, rb), (ow, ob), (tw, tb) in zip(ref, ours, tensor_lr):
        torch.testing.assert_close(ow, rw, rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(ob, rb, rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(tw, ow, rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(tb, ob, rtol=1e-6, atol=1e-7)
    for clip in (False, True):  # the adapted update reads a tensor LR the same way, clipped or not
        make = lambda w, b: LARS([{"params": [w], "weight_decay": 1e-2}], momentum=0.9, eta=0.5, clip=clip)
        for (fw, _), (tw, _) in zip(_steps(make, lrs), _steps(make, [torch.tensor(x) for x in lrs])):
            torch.testing.assert_close(tw, fw, rtol=1e-6, atol=1e-7)
