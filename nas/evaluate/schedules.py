"""Learning-rate schedules fitted to a fixed epoch budget: pure functions of the training progress.

Every schedule is a function of `t`, the number of epochs done so far as a real number in [0, epochs] (the
trainer passes `epoch + step / steps_per_epoch`, so smooth schedules move every step), and of the budget itself:
the same config gives a schedule that ends where it should whether a candidate trains for 3 epochs or 300.

- `step`: the authors' scheme, a list of values spread evenly over the epochs, each held for whole epochs.
  Value k covers epochs [ceil(k E / n), ceil((k+1) E / n)); epoch e therefore uses value floor(e n / E). When E
  is not a multiple of n, every value still gets floor(E/n) or ceil(E/n) epochs, the extra epochs spread evenly
  from the first value on (10 epochs over 3 values: 4, 3, 3; over 4 values: 3, 2, 3, 2). When E < n there are
  not enough epochs for every
  value; epoch e still takes value floor(e n / E), so the run starts on the first value and samples the rest
  evenly (2 epochs over [a, b, c, d]: a then c). Default values: [lr, lr/10, lr/100].
- `cosine`: from lr down to 0 by half a cosine over the budget (Loshchilov and Hutter, SGDR, without restarts).
- `one-cycle`: PyTorch's `OneCycleLR` shape (Smith 2018) with its default factors, so its users recognise it:
  cosine warm-up from lr/25 to the peak lr over `warmup_fraction` of the budget, then cosine annealing down to
  lr/25/1e4.
- `constant`: lr throughout (fine-tuning recipes such as the transfer arm's).
"""

import math
from collections.abc import Sequence

SCHEDULES = ("step", "cosine", "one-cycle", "constant")
ONE_CYCLE_DIV = 25.0
ONE_CYCLE_FINAL_DIV = 1e4


def step_values(lr: float, values: Sequence[float] | None) -> list[float]:
    """The values a `step` schedule walks through: `values` as given, or [lr, lr/10, lr/100]."""
    return [float(v) for v in values] if values else [lr, lr / 10, lr / 100]


def step_index(epoch: int, epochs: int, count: int) -> int:
    """Which of `count` values epoch `epoch` (0-based) of an `epochs`-long budget uses: floor(e n / E)."""
    epoch = min(max(epoch, 0), epochs - 1)
    return epoch * count // epochs


def cosine_lr(lr: float, t: float, epochs: int) -> float:
    """Half a cosine from `lr` at t = 0 to 0 at t = epochs."""
    frac = min(max(t / epochs, 0.0), 1.0)
    return lr * 0.5 * (1.0 + math.cos(math.pi * frac))


def one_cycle_lr(peak: float, t: float, epochs: int, warmup_fraction: float) -> float:
    """PyTorch's OneCycleLR (cosine annealing, div 25, final div 1e4) as a function of progress."""
    frac = min(max(t / epochs, 0.0), 1.0)
    start = peak / ONE_CYCLE_DIV
    end = start / ONE_CYCLE_FINAL_DIV
    if warmup_fraction > 0 and frac < warmup_fraction:
        return cosine_between(start, peak, frac / warmup_fraction)
    rest = 1.0 - warmup_fraction
    return cosine_between(peak, end, (frac - warmup_fraction) / rest if rest > 0 else 1.0)


def cosine_between(start: float, end: float, frac: float) -> float:
    """Cosine interpolation from `start` (frac 0) to `end` (frac 1)."""
    return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * min(max(frac, 0.0), 1.0)))


def learning_rate(
    schedule: str,
    lr: float,
    t: float,
    epochs: int,
    *,
    values: Sequence[float] | None = None,
    warmup_fraction: float = 0.3,
) -> float:
    """The learning rate after `t` epochs (fractional) of an `epochs`-long budget under `schedule`."""
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if schedule == "step":
        steps = step_values(lr, values)
        return steps[step_index(int(math.floor(t)), epochs, len(steps))]
    if schedule == "cosine":
        return cosine_lr(lr, t, epochs)
    if schedule == "one-cycle":
        return one_cycle_lr(lr, t, epochs, warmup_fraction)
    if schedule == "constant":
        return lr
    raise ValueError(f"unknown schedule {schedule!r} (known: {', '.join(SCHEDULES)})")
