"""Measured client memory: the peak of torch's CPU allocator during a client's work.

Torch's CPU tensors are invisible to ``tracemalloc`` and torch keeps allocator statistics only
for accelerators, so the measurement uses the profiler's allocator events (``profile_memory``):
every allocation and free, in order, with its size. The running sum of those deltas is the
growth of live tensor bytes; its maximum plus the bytes that were live when measuring began
(the caller passes the tensors it holds: model state, masks, local data) is the peak. Even without
stacks or shapes the profiler is not cheap: measured on this project's 2-core CI-class machine,
~0.3 s to start, stop and collect, and a profiled epoch of the small CNNs takes ~3x an unprofiled
one, which is why a client measures each kind of round once (``apps._known_growth``).
"""

from __future__ import annotations

import contextlib
import gc
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class PeakMemory:
    resident: int = 0
    """Bytes of the tensors/arrays already held when the measurement started."""
    growth: int = 0
    """Measured maximum of the allocator's live-byte growth during the measured block."""

    @property
    def peak(self) -> int:
        return self.resident + self.growth


def nbytes(items: Iterable[torch.Tensor | np.ndarray]) -> int:
    return sum(int(t.nbytes) if isinstance(t, np.ndarray) else t.numel() * t.element_size()
               for t in items)


@contextlib.contextmanager
def measure(resident: int = 0) -> Iterator[PeakMemory]:
    """``with measure(held_bytes) as m: ...`` then ``m.peak`` (CPU allocator only: on CUDA the
    device allocator's ``max_memory_allocated`` is added)."""
    from torch.profiler import ProfilerActivity, profile

    result = PeakMemory(resident=resident)
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prof = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
        prof.start()
    try:
        yield result
    finally:
        prof.stop()
        cpu = torch.autograd.DeviceType.CPU
        # stop() leaves the kineto results on the wrapped autograd profiler; None here would
        # mean torch's profiler API moved, and a silent zero growth would be a wrong figure
        events = prof.profiler.kineto_results if prof.profiler is not None else None
        if events is None:
            raise RuntimeError("torch.profiler kept no allocator events: cannot measure memory")
        # _KinetoEvent.nbytes() exists at run time (memory events) but not in torch's stubs
        deltas = sorted((e.start_ns(), e.nbytes()) for e in events.events()  # type: ignore[attr-defined]
                        if e.name() == "[memory]" and e.device_type() == cpu)
        # The profiler's results sit in a reference cycle: left to the cyclic collector, a
        # long-lived client process (a Ray actor serving hundreds of rounds) grew ~10 MB per
        # measured round. Break it and collect now.
        del events
        prof.profiler = None
        del prof
        gc.collect()
        live = peak = 0
        for _, d in deltas:
            live += d
            peak = max(peak, live)
        result.growth = peak + (int(torch.cuda.max_memory_allocated()) if cuda else 0)
