r"""The learning-rate schedule of an ``mpop`` run, one phase after the other.

::

    lr
    |  /\                  LFA, lfa_steps: the run's scheduler and warmup (e.g. linear),
    | /  \__               the schedule an mpo_full_lfa run of lfa_steps gets
    |/      \__   ______________ squeezing: constant tune_lr_scale x lr
    |          \_|
    +------------+--------------> optimizer step
             lfa_steps

The baseline ``p`` is thus measured on the model an ``mpo_full_lfa`` run of
the same steps ends with, not halfway through a constant rate. The engine
installs the factor as a ``LambdaLR`` (:meth:`Strategy.lr_lambda`).
"""
from __future__ import annotations

from typing import Callable


def scheduler_factor(name: str, warmup_steps: int, num_training_steps: int, options=None) -> Callable[[int], float]:
    """transformers' factor of scheduler ``name`` (``get_scheduler``) at each step, as a plain function."""
    import torch
    from transformers import get_scheduler

    probe = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)  # only its lambda is kept
    scheduler = get_scheduler(name, optimizer=probe, num_warmup_steps=warmup_steps,
                              num_training_steps=num_training_steps, scheduler_specific_kwargs=options or {})
    if not isinstance(scheduler, torch.optim.lr_scheduler.LambdaLR):
        raise ValueError(f"mpop: the LFA phase needs a per-step schedule; {name!r} is not one "
                         f"(use linear, cosine, constant_with_warmup, ...).")
    return scheduler.lr_lambdas[0]


def phased_factor(lfa: Callable[[int], float], lfa_steps: int, tune_scale: float) -> Callable[[int], float]:
    """``lfa(step)`` for the first ``lfa_steps`` optimizer steps, then ``tune_scale``."""
    def factor(step: int) -> float:
        return lfa(step) if step < lfa_steps else tune_scale

    return factor
