"""Zero-cost proxies on tiny networks: finite, deterministic for a seed, side-effect free, and moving as their
definitions say when weights are scaled or ReLUs die."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from nas.data.dataset import ImageData
from nas.evaluate.proxies import (
    PROXIES,
    Batch,
    activation_kernel,
    grad_norm,
    naswot,
    proxy_scores,
    sample_batch,
    snip,
    synflow,
    weight_gradients,
)
from nas.evaluate.trainer import seeded_model
from nas.genome import shortcuts as sc
from nas.genome.architecture import Architecture
from nas.genome.genome import BlockGene, Genome
from nas.model.analytic_cost import analytic_cost


def tiny_arch(blocks=((2, 4), (1, 3)), size: int = 8) -> Architecture:
    genes = tuple(BlockGene(n, k, sc.all_ones(n)) for n, k in blocks)
    return Architecture(3, 4, size, 6, 2, 0.5, Genome(genes))


def random_batch(n: int = 16, size: int = 8, seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    return Batch(x=torch.randn((n, 3, size, size), generator=g), y=torch.arange(n) % 4)


def image_data(n: int, classes: int) -> ImageData:
    """Images sorted by class, as a loader may hold them; every pixel of image i is i % 256."""
    x = (np.arange(n, dtype=np.uint8)[:, None, None, None] * np.ones((1, 3, 2, 2), dtype=np.uint8)).copy()
    y = np.sort(np.arange(n) % classes)
    return ImageData(x, y, None, None, None, None, classes, [str(c) for c in range(classes)], (10.0,) * 3, (2.0,) * 3)


@pytest.mark.parametrize("blocks", [((1, 2),), ((2, 4), (1, 3)), ((3, 2), (2, 5), (1, 4))])
def test_every_proxy_is_finite_and_cost_is_the_formula(blocks):
    arch = tiny_arch(blocks)
    scores, seconds = proxy_scores(arch, random_batch(), seed=0)
    assert set(PROXIES) <= set(scores) and all(math.isfinite(scores[p]) for p in PROXIES)
    assert (scores["params"], scores["flops"]) == tuple(map(float, analytic_cost(arch)))
    assert all(seconds[p] > 0 for p in PROXIES)


def test_deterministic_for_a_seed_and_different_across_seeds():
    arch, batch = tiny_arch(), random_batch()
    first, again, other = (proxy_scores(arch, batch, seed=s)[0] for s in (0, 0, 1))
    assert first == again
    assert all(first[p] != other[p] for p in PROXIES)


def test_the_model_passed_in_is_left_unchanged():
    model, batch = seeded_model(tiny_arch(), 0), random_batch()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for proxy in (synflow, naswot, grad_norm, snip):
        proxy(model, batch)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in model.parameters())


def without_eps(model: nn.Module) -> nn.Module:
    """BatchNorm's epsilon, which adds a little to every variance, is the one part that sees a weight's scale."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eps = 1e-12
    return model


def scale_convs(model: nn.Module, alpha: float) -> nn.Module:
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.mul_(alpha)
    return model


@pytest.mark.parametrize("alpha", [0.25, 4.0])
def test_batchnorm_makes_conv_gradients_scale_inversely_and_snip_invariant(alpha):
    """Every conv feeds a BatchNorm, so the network's function ignores a conv weight's scale: the gradient of a
    conv weight scaled by alpha is divided by alpha, |w * g| is unchanged, and the linear head's gradient too."""
    batch = random_batch()
    base = without_eps(seeded_model(tiny_arch(), 0))
    scaled = scale_convs(without_eps(seeded_model(tiny_arch(), 0)), alpha)
    pairs = list(zip(weight_gradients(base, batch), weight_gradients(scaled, batch), strict=True))
    for (w, g), (_, g_scaled) in pairs:
        expected = g / alpha if w.dim() == 4 else g
        assert torch.allclose(g_scaled, expected, rtol=1e-3, atol=1e-6)
    conv = sum(float(g.norm()) for w, g in weight_gradients(base, batch) if w.dim() == 4)
    head = grad_norm(base, batch) - conv
    assert grad_norm(scaled, batch) == pytest.approx(conv / alpha + head, rel=1e-3)
    assert snip(scaled, batch) == pytest.approx(snip(base, batch), rel=1e-3)


@pytest.mark.parametrize("alpha", [0.5, 3.0])
def test_synflow_is_linear_in_the_classifier_scale(alpha):
    """Every path of the all-ones flow goes through the classifier, and the absolute network is positively
    homogeneous in each layer: scaling the classifier's weights by alpha scales the score by alpha."""
    batch = random_batch()
    base, scaled = seeded_model(tiny_arch(), 0), seeded_model(tiny_arch(), 0)
    with torch.no_grad():
        scaled.classifier.weight.mul_(alpha)
    assert synflow(scaled, batch) == pytest.approx(alpha * synflow(base, batch), rel=1e-6)


def test_snip_adds_magnitudes_where_the_signed_sum_cancels():
    """A conv weight followed by BatchNorm is scale-invariant, so by Euler's theorem the signed sum of w * dL/dw
    over its layer is zero; SNIP's absolute values keep every weight's share."""
    model, batch = without_eps(seeded_model(tiny_arch(), 0)), random_batch()
    convs = [(w, g) for w, g in weight_gradients(model, batch) if w.dim() == 4]
    magnitudes = sum(float((w * g).abs().sum()) for w, g in convs)
    assert all(abs(float((w * g).sum())) < 1e-4 * magnitudes for w, g in convs)
    assert snip(model, batch) > magnitudes > 0


def test_synflow_ignores_the_signs_of_the_weights():
    batch = random_batch()
    base, flipped = seeded_model(tiny_arch(), 0), seeded_model(tiny_arch(), 0)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in flipped.parameters():
            p.mul_(torch.randint(0, 2, p.shape, generator=g) * 2.0 - 1.0)
    assert synflow(flipped, batch) == pytest.approx(synflow(base, batch), rel=1e-12)


def kill_relus(model: nn.Module, share: float) -> nn.Module:
    """Set the bias of the first `share` of the BatchNorms to -10: in training mode their output is a unit normal
    minus 10, so the ReLU after each is dead for every image."""
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        for m in norms[: round(share * len(norms))]:
            m.bias.fill_(-10.0)
    return model


def test_activation_kernel_counts_agreeing_units():
    """Each image agrees with itself on every ReLU unit: a constant diagonal, the number of units, which bounds
    a symmetric kernel's every entry."""
    model, batch = seeded_model(tiny_arch(), 0), random_batch(n=8)
    units = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: units.append(out[0].numel()))
             for m in model.modules() if isinstance(m, nn.ReLU)]  # fmt: skip
    model(batch.x[:1])
    for h in hooks:
        h.remove()
    kernel = activation_kernel(model, batch)
    assert torch.equal(kernel.diagonal(), torch.full((8,), float(sum(units)), dtype=torch.float64))
    assert torch.equal(kernel, kernel.T) and bool((kernel <= sum(units)).all()) and bool((kernel >= 0).all())


def test_naswot_ranks_networks_with_dead_relus_lower():
    batch = random_batch(n=32)
    healthy = naswot(seeded_model(tiny_arch(), 0), batch)
    half = naswot(kill_relus(seeded_model(tiny_arch(), 0), 0.5), batch)
    dead = naswot(kill_relus(seeded_model(tiny_arch(), 0), 1.0), batch)
    assert math.isfinite(healthy) and half < healthy
    assert dead == float("-inf")


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 60), st.integers(1, 80), st.integers(0, 2**32 - 1))
def test_sample_batch_draws_distinct_images_normalised(n, size, seed):
    data = image_data(n, classes=3)
    batch = sample_batch(data, size, seed)
    assert len(batch.x) == len(batch.y) == min(n, size)
    pixels = (batch.x[:, 0, 0, 0] * 2.0 + 10.0).round().long()
    assert len(set(pixels.tolist())) == len(batch.y)  # without replacement
    assert torch.equal(batch.y, torch.from_numpy(data.y_train[pixels.numpy()]))  # each label stays with its image
    again = sample_batch(data, size, seed)
    assert torch.equal(batch.x, again.x) and torch.equal(batch.y, again.y)


def test_sample_batch_mixes_classes_of_a_class_sorted_loader():
    batch = sample_batch(image_data(200, classes=10), 20, seed=0)
    assert len(set(batch.y.tolist())) >= 5
