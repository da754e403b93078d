"""Peak memory a forward pass allocates beyond what already exists (weights, inputs).

Measured by PyTorch's own allocator bookkeeping, not by the process's resident
size: under ``torch.profiler`` with ``profile_memory=True`` every CPU (or CUDA)
allocation and free made by a tensor is an event with its signed byte count.
Summing them in time order gives the bytes held by the pass at every moment;
the maximum is its peak::

    peak = max_t  sum_{events e, time(e) <= t} bytes(e)       (bytes > 0 allocated, < 0 freed)

What it counts: activations, attention scores, temporaries, and any weight a
layer materialises for the pass (an MPO contracted on the fly). What it does
not count: memory held before the pass (parameters, cached dense weights), and
non-tensor allocations (Python objects, the allocator's own slack).
"""
from __future__ import annotations

from typing import Mapping

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile


def peak_forward_bytes(model: nn.Module, inputs: Mapping) -> int:
    """Peak bytes allocated by one ``model(**inputs)`` under ``torch.inference_mode`` (see module docstring).

    The pass runs once unmeasured first, so lazily built caches (e.g. an MPO
    layer's contracted weight in ``fast`` mode) exist before, as they would in
    a serving process, and are not counted as activations.
    """
    cuda = any(p.is_cuda for p in model.parameters())
    activities = [ProfilerActivity.CPU, ProfilerActivity.CUDA] if cuda else [ProfilerActivity.CPU]
    device = "CUDA" if cuda else "CPU"  # the pass's own device: host copies are not its activations
    with torch.inference_mode():
        model(**inputs)
        with profile(activities=activities, profile_memory=True) as prof:
            out = model(**inputs)
            del out
    events = sorted((e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"
                     and e.device_type().name == device),
                    key=lambda e: e.start_ns())
    held = peak = 0
    for event in events:
        held += event.nbytes()
        peak = max(peak, held)
    return int(peak)
