"""BYOL regression loss (docs/algorithm.md §2), computed in fp32 whatever the autocast dtype."""
from __future__ import annotations

import torch

NORM_EPS = 1e-12  # official l2_normalize: rsqrt(max(sum sq, 1e-12))


def l2_normalize(x: torch.Tensor, eps: float = NORM_EPS) -> torch.Tensor:
    x = x.float()
    return x * torch.rsqrt(torch.clamp(x.pow(2).sum(dim=-1, keepdim=True), min=eps))


def regression_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Per-sample ||p/|p| - z/|z|||^2 = 2 - 2 cos(p, z); shape [N], range [0, 4]."""
    return 2.0 - 2.0 * (l2_normalize(p) * l2_normalize(z)).sum(dim=-1)


def byol_loss(p1: torch.Tensor, p2: torch.Tensor, t1: torch.Tensor, t2: torch.Tensor) -> torch.Tensor:
    """Symmetric loss: per sample, the SUM of both directions; then the mean over the batch.

    p1/p2: online predictions of views 1/2; t1/t2: target projections of views 1/2 (no grad).
    View 1's prediction regresses view 2's target and vice versa (crossed views).
    """
    return (regression_loss(p1, t2.detach()) + regression_loss(p2, t1.detach())).mean()


@torch.no_grad()
def z_std(*zs: torch.Tensor) -> torch.Tensor:
    """Collapse monitor (solo-learn `train_z_std`): std over the batch of l2-normalised
    projections, averaged over features and views. ~1/sqrt(dim) when healthy, 0 when collapsed."""
    return torch.stack([l2_normalize(z).std(dim=0).mean() for z in zs]).mean()
