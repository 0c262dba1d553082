"""Zero-cost proxies: scores of a network at initialisation, from one mini-batch, that may rank networks by the
accuracy they would reach after training, at a fraction of a training's cost.

- `synflow` (Tanaka et al. 2020): sum over weights of |w * dR/dw|, R the sum of the output of the network with
  every parameter replaced by its absolute value on an all-ones input. Data-free. BatchNorm runs in eval mode,
  where at initialisation it is the identity (running mean 0, variance 1, weight 1, bias 0), as the
  BatchNorm-free networks of the zero-cost-proxy papers.
- `naswot` (Mellor et al. 2021): log-determinant of the kernel K[i, j] = number of ReLUs on which images i and j
  agree (both active or both inactive): networks that tell the images of a batch apart at initialisation score
  higher; a network whose ReLUs are dead gives every image the same code, a singular K and -inf.
- `grad_norm` (Abdelfattah et al. 2021): the sum over conv and linear layers of the L2 norm of the weight
  gradient of the cross-entropy on the batch.
- `snip` (Lee et al. 2019): the sum over conv and linear weights of |w * dL/dw|.

Each function takes its own deep copy, so the model passed in is never changed (BatchNorm's running statistics
included) and the proxies can be computed in any order. `proxy_scores` builds the network of an architecture
from a seed and adds the analytic parameter and FLOP counts, the baselines any proxy has to beat.
"""

import copy
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from nas.data.dataset import ImageData
from nas.evaluate.trainer import seeded_model
from nas.genome.architecture import Architecture
from nas.model.analytic_cost import analytic_cost

PROXIES = ("synflow", "naswot", "grad_norm", "snip")


@dataclass(frozen=True)
class Batch:
    """One normalised mini-batch: images (N, C, H, W) float32 and labels (N,) int64."""

    x: torch.Tensor
    y: torch.Tensor


def sample_batch(data: ImageData, size: int, seed: int) -> Batch:
    """`size` training images drawn without replacement by `seed`, normalised as the trainer normalises them.

    Drawn at random because a loader may hold its images sorted by class: the first images would all be one
    class, which makes every gradient proxy degenerate."""
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(data.y_train), size=min(size, len(data.y_train)), replace=False))
    shape = (1, len(data.mean), 1, 1)
    mean = torch.tensor(data.mean, dtype=torch.float32).view(shape)
    std = torch.tensor(data.std, dtype=torch.float32).view(shape)
    x = (torch.from_numpy(np.ascontiguousarray(data.x_train[idx])).float() - mean) / std
    return Batch(x=x, y=torch.from_numpy(np.asarray(data.y_train[idx], dtype=np.int64)))


def weighted_layers(model: nn.Module) -> list[nn.Module]:
    """The conv and linear layers, whose weights the gradient proxies score."""
    return [m for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)]


def weight_gradients(model: nn.Module, batch: Batch) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(weight, dL/dweight) of every conv and linear layer of a copy of `model`, L the mean cross-entropy of the
    batch in training mode (BatchNorm on batch statistics, as in the first step of a training)."""
    net = copy.deepcopy(model).train()
    net.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(net(batch.x), batch.y).backward()
    return [(m.weight.detach(), m.weight.grad.detach()) for m in weighted_layers(net)]


def grad_norm(model: nn.Module, batch: Batch) -> float:
    return float(sum(g.norm() for _, g in weight_gradients(model, batch)))


def snip(model: nn.Module, batch: Batch) -> float:
    return float(sum((w * g).abs().sum() for w, g in weight_gradients(model, batch)))


def synflow(model: nn.Module, batch: Batch) -> float:
    """In float64: the product of absolute weights along paths grows with depth and would overflow float32."""
    net = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    net.zero_grad(set_to_none=True)
    net(torch.ones((1, *batch.x.shape[1:]), dtype=torch.float64)).sum().backward()
    return float(sum((p.detach() * p.grad).abs().sum() for p in net.parameters() if p.grad is not None))


def activation_kernel(model: nn.Module, batch: Batch) -> torch.Tensor:
    """K[i, j] = the number of ReLU units on which images i and j agree (both active or both inactive), over
    every ReLU of a copy of `model` in training mode (Mellor et al.'s setting): units minus Hamming distance."""
    net = copy.deepcopy(model).train()
    n = len(batch.x)
    kernel = torch.zeros((n, n), dtype=torch.float64)

    def record(_module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        codes = (output.detach().reshape(n, -1) > 0).double()
        kernel.add_(codes @ codes.T + (1 - codes) @ (1 - codes).T)

    hooks = [m.register_forward_hook(record) for m in net.modules() if isinstance(m, nn.ReLU)]
    try:
        with torch.no_grad():
            net(batch.x)
    finally:
        for h in hooks:
            h.remove()
    return kernel


def naswot(model: nn.Module, batch: Batch) -> float:
    """log|det K| of `activation_kernel`; -inf when K is singular (two images with the same code, or no unit
    that tells them apart). K is positive semi-definite, so its determinant's sign carries nothing."""
    return float(torch.linalg.slogdet(activation_kernel(model, batch)).logabsdet)


FUNCTIONS = {"synflow": synflow, "naswot": naswot, "grad_norm": grad_norm, "snip": snip}


def proxy_scores(arch: Architecture, batch: Batch, seed: int) -> tuple[dict[str, float], dict[str, float]]:
    """(scores, seconds): every proxy of the network of `arch` initialised from `seed`, plus `params` and `flops`
    (by formula, free), and the seconds each proxy took (the network's construction counted in each, since a
    proxy alone would have to build it). Deterministic for a given architecture, batch and seed on one thread."""
    scores: dict[str, float] = {}
    seconds: dict[str, float] = {}
    for name, function in FUNCTIONS.items():
        start = time.perf_counter()
        scores[name] = function(seeded_model(arch, seed), batch)
        seconds[name] = time.perf_counter() - start
    params, flops = analytic_cost(arch)
    scores.update(params=float(params), flops=float(flops))
    seconds.update(params=0.0, flops=0.0)
    return scores, seconds
