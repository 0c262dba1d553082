"""`fitness.deterministic`: bitwise-repeatable training on a GPU, at some cost in speed.

On the CPU the trainer is deterministic already: one seeded generator draws every batch, crop and flip, and the
CPU kernels give the same numbers for the same inputs. On a GPU three things break that: cuDNN picks among
convolution algorithms (some nondeterministic, some chosen by timing), a few backward kernels accumulate with
atomics in whatever order threads finish, and cuBLAS splits reductions across a workspace whose use varies.
`deterministic: true` turns all three off: `torch.use_deterministic_algorithms(True)` (an op without a
deterministic implementation then raises, which makes that candidate a failed result naming the op, rather
than a silently different number), `cudnn.deterministic = True` with `cudnn.benchmark = False`, and
`CUBLAS_WORKSPACE_CONFIG=:4096:8`, which cuBLAS reads when it creates its handle, so it is set before the first
training of the process. bf16 autocast stays on (`fitness.precision`): its rounding is deterministic too, but
it makes GPU numbers differ from CPU numbers; set `precision: fp32` as well to compare against a CPU run.
"""

import logging
import os

import torch

log = logging.getLogger(__name__)
CUBLAS_SETTING = ":4096:8"


def set_deterministic(enabled: bool) -> None:
    """Switch torch's deterministic mode on (or back off) for this process."""
    if enabled and os.environ.get("CUBLAS_WORKSPACE_CONFIG") is None:
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            log.warning("CUDA started before fitness.deterministic took effect; set CUBLAS_WORKSPACE_CONFIG=%s "
                        "in the environment to make cuBLAS deterministic", CUBLAS_SETTING)  # fmt: skip
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = CUBLAS_SETTING
    torch.use_deterministic_algorithms(enabled)
    torch.backends.cudnn.deterministic = enabled
    if enabled:
        torch.backends.cudnn.benchmark = False
