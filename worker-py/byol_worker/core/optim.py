"""LARS as in the official BYOL code, solo-learn's clipped variant, and plain SGD (docs/algorithm.md §4).

The LR is set per step by the caller (`group["lr"]`), from schedules.lr_at.
"""
from __future__ import annotations

from typing import Any, Iterable

import torch
from torch import nn

# Parameters of these modules are "norm" params: excluded from weight decay and LARS adaptation.
_NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm)


def split_params(modules: Iterable[nn.Module]) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(regular, excluded): excluded = every bias and every parameter of a norm module.

    Decided by module type, not by name, so BN layers anywhere (heads included) are caught.
    """
    regular: list[nn.Parameter] = []
    excluded: list[nn.Parameter] = []
    seen: set[int] = set()
    for root in modules:
        for mod in root.modules():
            for name, p in mod.named_parameters(recurse=False):
                if id(p) in seen or not p.requires_grad:
                    continue
                seen.add(id(p))
                (excluded if isinstance(mod, _NORM_TYPES) or name == "bias" else regular).append(p)
    return regular, excluded


class LARS(torch.optim.Optimizer):
    """LARS with per-group `adapt` flag.

    Official order (clip=False) for adapted params:
        g <- g + wd*p; trust = eta*||p||/||g|| if both norms > 0 else 1;
        mu <- m*mu + trust*g; p <- p - lr*mu.
    solo-learn (clip=True), for adapted params with ||p|| > 0 and ||g|| > 0 (raw grad norm):
        trust = eta*||p|| / (||g|| + wd*||p|| + eps); trust <- min(trust/lr, 1);
        g <- (g + wd*p) * trust; otherwise g is used as is (no decay).
    Non-adapted groups are SGD with momentum: g <- g + wd*p; mu <- m*mu + g; p <- p - lr*mu (the bias/norm
    group has wd 0). Momentum starts at zero, so the first step's mu is g, as in torch.optim.SGD.
    Vectorised with torch._foreach ops and tensor-valued trust ratios: no host sync per param. `group["lr"]`
    may be a 0-d tensor on the device, so a captured CUDA graph reads the step's LR from it (step.py).
    """

    def __init__(self, params, lr: float = 0.0, momentum: float = 0.9, weight_decay: float = 0.0,
                 eta: float = 1e-3, clip: bool = False, eps: float = 1e-8, adapt: bool = True):
        if momentum < 0 or weight_decay < 0 or eta <= 0:
            raise ValueError(f"LARS: invalid momentum={momentum}, weight_decay={weight_decay} or eta={eta}")
        defaults = dict(lr=lr, momentum=momentum, weight_decay=weight_decay, eta=eta, clip=clip, eps=eps,
                        adapt=adapt)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            lr, m, wd = group["lr"], float(group["momentum"]), float(group["weight_decay"])
            if group["adapt"]:
                grads = self._adapted(params, grads, group, lr)
            elif wd:
                grads = torch._foreach_add(grads, params, alpha=wd)
            bufs = []
            for p in params:
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                bufs.append(state["momentum_buffer"])
            torch._foreach_mul_(bufs, m)
            torch._foreach_add_(bufs, grads)
            if isinstance(lr, torch.Tensor):
                torch._foreach_add_(params, torch._foreach_mul(bufs, -lr))
            else:
                torch._foreach_add_(params, bufs, alpha=-float(lr))
        return loss

    @staticmethod
    def _adapted(params, grads, group, lr: float | torch.Tensor) -> list[torch.Tensor]:
        wd, eta = float(group["weight_decay"]), float(group["eta"])
        p_norm = torch.stack(torch._foreach_norm(params))
        if not group["clip"]:
            g = torch._foreach_add(grads, params, alpha=wd) if wd else [x.clone() for x in grads]
            g_norm = torch.stack(torch._foreach_norm(g))
            ok = (p_norm > 0) & (g_norm > 0)
            trust = torch.where(ok, eta * p_norm / torch.where(ok, g_norm, 1.0), 1.0)
            torch._foreach_mul_(g, list(trust.unbind()))
            return g
        g_norm = torch.stack(torch._foreach_norm(grads))
        ok = (p_norm > 0) & (g_norm > 0)
        trust = eta * p_norm / (g_norm + wd * p_norm + float(group["eps"]))
        # min(trust/lr, 1); at lr = 0 the limit is 1 (and the step moves nothing anyway)
        if isinstance(lr, torch.Tensor):
            trust = torch.where(lr > 0, torch.clamp(trust / lr, max=1.0), 1.0)
        else:
            trust = torch.clamp(trust / lr, max=1.0) if lr > 0 else torch.ones_like(trust)
        trust = torch.where(ok, trust, 1.0)
        decay = torch.where(ok, wd, 0.0)
        g = torch._foreach_add(grads, torch._foreach_mul(params, list(decay.unbind())))
        torch._foreach_mul_(g, list(trust.unbind()))
        return g


def build_optimizer(model: nn.Module, opt_cfg: dict[str, Any]) -> torch.optim.Optimizer:
    """Optimizer over the online encoder, projector and predictor, from the resolved `spec.optimizer`.

    Groups carry `excluded` (bias/norm) flags; the caller sets `group["lr"]` each step.
    """
    name = opt_cfg.get("name", "lars")
    if name not in ("lars", "sgd"):
        raise ValueError(f"spec.optimizer.name: unknown optimizer '{name}', expected 'lars' or 'sgd'")
    wd = float(opt_cfg.get("weightDecay", 0.0))
    regular, excluded = split_params([model.online_encoder, model.online_projector, model.predictor])
    if not opt_cfg.get("excludeBiasAndNorm", True):
        regular, excluded = regular + excluded, []
    # SGD is LARS's non-adapted update: torch.optim.SGD's, but with a tensor LR allowed
    groups = [{"params": regular, "adapt": name == "lars", "weight_decay": wd, "excluded": False}]
    if excluded:
        groups.append({"params": excluded, "adapt": False, "weight_decay": 0.0, "excluded": True})
    return LARS(groups, lr=0.0, momentum=float(opt_cfg.get("momentum", 0.9)), weight_decay=wd,
                eta=float(opt_cfg.get("trustCoefficient", 1e-3)), clip=bool(opt_cfg.get("larsClip", False)))
