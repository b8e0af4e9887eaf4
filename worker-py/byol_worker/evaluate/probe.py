"""The linear probe: a multinomial logistic regression on frozen encoder features, the paper's transfer protocol
[P App. D.2] (docs/algorithm.md §7). `python -m byol_worker knn --linear-probe` runs it beside the kNN."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def fit_logistic(x: torch.Tensor, y: torch.Tensor, num_classes: int, weight_decay: float = 1e-4,
                 max_iter: int = 100) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Multinomial logistic regression by L-BFGS on x's device: minimises
    mean cross-entropy + weight_decay/2 * ||W||^2 (bias not penalised). Returns (W, b, final loss)."""
    W = torch.zeros(x.shape[1], num_classes, device=x.device, requires_grad=True)
    b = torch.zeros(num_classes, device=x.device, requires_grad=True)
    opt = torch.optim.LBFGS([W, b], lr=1.0, max_iter=max_iter, history_size=20, tolerance_grad=1e-7,
                            tolerance_change=1e-10, line_search_fn="strong_wolfe")

    def objective():
        return F.cross_entropy(x @ W + b, y) + 0.5 * weight_decay * (W * W).sum()

    def closure():
        opt.zero_grad()
        loss = objective()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    with torch.no_grad():
        return W.detach(), b.detach(), float(objective())


# The paper picks the probe's L2 penalty from log-spaced values in [1e-6, 1e5] on a validation split [P App. D.2];
# one per decade here (45 in the paper), on 10% of the train split (CIFAR-10's 5,000 of 50,000).
PROBE_WEIGHT_DECAYS = tuple(10.0 ** e for e in range(-6, 6))
PROBE_VAL_FRACTION = 0.1


def _accuracy(x: torch.Tensor, y: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> float:
    with torch.no_grad():
        return ((x @ W + b).argmax(1) == y).float().mean().item()


def select_weight_decay(x: torch.Tensor, y: torch.Tensor, num_classes: int, max_iter: int = 100,
                        grid: tuple = PROBE_WEIGHT_DECAYS, seed: int = 0) -> float:
    """The penalty of PROBE_WEIGHT_DECAYS with the best accuracy on a held-out PROBE_VAL_FRACTION of (x, y), fitted
    on the rest; ties go to the larger penalty."""
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed)).to(x.device)
    n_val = max(1, int(len(y) * PROBE_VAL_FRACTION))
    val, fit = perm[:n_val], perm[n_val:]
    scores = [(_accuracy(x[val], y[val], *fit_logistic(x[fit], y[fit], num_classes, wd, max_iter)[:2]), wd)
              for wd in grid]
    return max(scores)[1]


def linear_probe(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
                 num_classes: int, weight_decay: float | None = None, max_iter: int = 100) -> dict:
    """Linear probe on frozen features, the paper's transfer protocol [P App. D.2]: the L2 penalty is chosen on a
    validation split of the train features (select_weight_decay) unless given, then the probe is refitted on all
    of them.

    Returns {top1, train_top1, loss, weight_decay}.
    """
    if weight_decay is None:
        weight_decay = select_weight_decay(train_x, train_y, num_classes, max_iter)
    W, b, loss = fit_logistic(train_x, train_y, num_classes, weight_decay, max_iter)
    return {"top1": _accuracy(test_x, test_y, W, b), "train_top1": _accuracy(train_x, train_y, W, b), "loss": loss,
            "weight_decay": weight_decay}
