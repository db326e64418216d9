"""Batches of host images through the GPU, overlapped: while one batch filters, the next
uploads, and the host goes on decoding and encoding other files.

Each batch is copied into page-locked (pinned) host memory, uploaded on one of DEPTH streams
(batch i on stream i % DEPTH), filtered on that stream, and downloaded into pinned memory on
the same stream; an event marks its end. `submit` returns at once; `Pending.result()` waits
for that batch's event only. With two streams, batch i+1's upload runs while batch i filters,
and neither waits for the host.

The device work goes through the backend's runtime (runtime.CupyRuntime on a GPU: cupyx
pinned arrays, cupy streams and events; the CPU emulator runs the same calls in order, which
is how the tests check this logic without a GPU).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEPTH = 2


@dataclass
class Pending:
    """A batch in flight: its pinned result, the event that marks it done, and the buffers
    that must live until then."""

    out: np.ndarray
    event: object
    keep: tuple

    def result(self) -> np.ndarray:
        """The filtered frames (waits for this batch's event only)."""
        self.event.synchronize()
        return self.out


class DeviceStaging:
    """Filters host batches on the GPU, DEPTH batches in flight on their own streams."""

    depth = DEPTH

    def __init__(self, backend):
        self.runtime = backend.runtime
        self.streams = [self.runtime.new_stream() for _ in range(DEPTH)]
        self.count = 0

    def submit(self, frames: np.ndarray, filter_fn) -> Pending:
        """Queue one batch (host frames, any dtype) through `filter_fn(device_frames) ->
        device_result` and return at once."""
        rt = self.runtime
        stream = self.streams[self.count % DEPTH]
        self.count += 1
        staged = rt.pinned_empty(frames.shape, frames.dtype)
        staged[...] = frames   # the only host copy: pinned memory uploads asynchronously
        with rt.use_stream(stream):
            device = rt.upload(staged)
            result = filter_fn(device)
            out = rt.pinned_empty(result.shape, result.dtype)
            rt.download(result, out)
            event = rt.record_event()
        return Pending(out, event, (staged, device, result))


class _Done:
    def synchronize(self) -> None:
        pass


class HostStaging:
    """The same interface on the CPU: filters at once, one batch in flight."""

    depth = 1

    @staticmethod
    def submit(frames: np.ndarray, filter_fn) -> Pending:
        return Pending(filter_fn(frames), _Done(), ())
