"""Correlation by real FFTs on the device (cupy.fft, i.e. cuFFT), overlap-save in blocks.

The same method as gpuconv.backends.numpy.fft, written against an array module `xp` (CuPy on
the GPU; the CPU tests pass numpy): every sliding axis is cut into overlapping blocks of a
fast length L (2^a 3^b 5^c 7^d, the radices cuFFT runs fastest) stepping by B = L - e + 1
outputs, where e is the dilated kernel span. Padding is folded into the block gather: each
block's sample indices go through numpy.pad's index maps (gpuconv.boundary), so every
boundary works at any pad width and no padded copy of x is made. All blocks of all images
in a chunk go through one batched rfftn, are multiplied by the kernel's spectrum (computed
once per call) and go back through one irfftn; the stride is applied by keeping every s-th
output of each block.

Memory: a chunk of images is sized so that its blocks, their spectra and the transform's
workspace stay within `workspace_bytes` (default: a quarter of the device's free memory,
at most 2 GiB); larger batches are processed chunk by chunk, each chunk's transforms
batched. One image whose blocks alone exceed the budget is still processed whole.
"""
from __future__ import annotations

import math

import numpy as np

from ...boundary import boundary_index
from ...plan import CorrelatePlan
from ..numpy.fft import dilated_kernel, fft_geometry

FFT_PRIMES = (2, 3, 5, 7)
# A block's fixed cost in samples per axis (a kernel launch amortised over a batched plan is
# small) and the shortest block worth cutting. Unmeasured estimates; see bench/NOTES.md.
BLOCK_OVERHEAD = 16
MIN_BLOCK = 64
# Bytes of device memory per real block sample during a chunk: the gathered blocks (Acc),
# their spectrum (about as large, complex), cuFFT's workspace and the inverse's output.
WORKSPACE_PER_SAMPLE = 4


def fft_blocks(plan: CorrelatePlan) -> list:
    """(L, B, n) per sliding axis: transform length, stride-1 outputs per block, blocks.

    Examples
    --------
    >>> from gpuconv.plan import correlate_plan
    >>> p = correlate_plan((4096, 4096), np.float32, np.ones((63, 63)), "same", "constant", 0.0, 1, 1,
    ...                    None, None, None, "fft")
    >>> [L for L, _, _ in fft_blocks(p)]
    [378, 378]
    """
    return fft_geometry(None, plan.kernel_shape, plan.out_sliding, plan.stride, plan.dilation, primes=FFT_PRIMES,
                        overhead=BLOCK_OVERHEAD, min_block=MIN_BLOCK)


def block_samples(plan: CorrelatePlan) -> int:
    """Real samples transformed per image (the blocks' total size)."""
    return math.prod(length * n for length, _, n in fft_blocks(plan))


def default_workspace(xp) -> int:
    """A quarter of the device's free memory, at most 2 GiB (256 MiB for host arrays)."""
    if getattr(xp, "__name__", "") == "cupy":
        free, _ = xp.cuda.runtime.memGetInfo()
        return int(min(free // 4, 2 << 30))
    return 256 << 20


def kernel_spectrum(xp, kernel: np.ndarray, plan: CorrelatePlan, lengths: tuple, acc: np.dtype):
    """conj(rfftn(dilated kernel, lengths)) on the device: the product with a block's spectrum
    is then the block's circular cross-correlation."""
    kd = dilated_kernel(kernel, plan.dilation, acc)
    return xp.conj(xp.fft.rfftn(xp.asarray(kd), s=lengths, axes=tuple(range(kernel.ndim))))


def _gather_index(plan: CorrelatePlan, axis: int, geo: tuple):
    """Source index (clipped into the axis) of every block sample along sliding axis `axis`,
    and for the constant boundary the mask of samples that lie inside x (None otherwise)."""
    length, step, n = geo
    n_in = plan.in_sliding[axis]
    pos = (np.arange(n)[:, None] * step + np.arange(length)[None, :]).ravel() - plan.pad_lo[axis]
    if plan.boundary == "constant":
        inside = (pos >= 0) & (pos < n_in)
        return np.clip(pos, 0, n_in - 1), (None if inside.all() else inside)
    return boundary_index(pos, n_in, plan.boundary), None


def fft_correlate(xp, x, kernel: np.ndarray, plan: CorrelatePlan, workspace_bytes: int | None = None):
    """Correlate x (device array in x's own axis order, any dtype) with the host `kernel`
    over plan.axes by FFT; returns the result in the compute dtype as (images, *out_sliding),
    images being the batch axes flattened in order (no clip or cast applied; a view).

    Examples
    --------
    >>> from gpuconv.plan import correlate_plan
    >>> x = np.arange(12.0).reshape(3, 4)
    >>> p = correlate_plan(x.shape, x.dtype, np.ones(2), "valid", "constant", 0.0, 1, 1, None, None, None, "fft")
    >>> fft_correlate(np, x, np.ones(2), p).round(6)  # a 1-D kernel: each row is an image
    array([[ 1.,  3.,  5.],
           [ 9., 11., 13.],
           [17., 19., 21.]])
    """
    nd = plan.ndim
    acc = np.dtype(plan.compute_dtype)
    geo = fft_blocks(plan)
    lengths = tuple(g[0] for g in geo)
    counts = tuple(g[2] for g in geo)
    trailing = tuple(range(x.ndim - nd, x.ndim))
    xm = xp.moveaxis(x, plan.axes, trailing).reshape((-1,) + tuple(plan.in_sliding))
    n_img = xm.shape[0]
    kf = kernel_spectrum(xp, kernel, plan, lengths, acc)
    index = [_gather_index(plan, i, g) for i, g in enumerate(geo)]
    index = [(xp.asarray(ix), None if m is None else xp.asarray(m)) for ix, m in index]
    keep = tuple(slice(0, b, s) for (_, b, _), s in zip(geo, plan.stride))
    per_block = tuple(-(-b // s) for (_, b, _), s in zip(geo, plan.stride))
    budget = default_workspace(xp) if workspace_bytes is None else workspace_bytes
    per_image = math.prod(length * n for length, _, n in geo) * acc.itemsize * WORKSPACE_PER_SAMPLE
    chunk = max(1, min(n_img, budget // max(per_image, 1)))
    # blocks come out as (img, n_0, L_0, n_1, L_1, ...); transforms want (img, n_0.., L_0..)
    to_blocks = (0,) + tuple(1 + 2 * i for i in range(nd)) + tuple(2 + 2 * i for i in range(nd))
    # results come as (img, n_0.., P_0..); the output wants (img, n_0, P_0, n_1, P_1, ...)
    to_output = (0,) + tuple(v for i in range(nd) for v in (1 + i, 1 + nd + i))
    t_axes = tuple(range(1 + nd, 1 + 2 * nd))
    y = xp.empty((n_img,) + tuple(n * p for n, p in zip(counts, per_block)), dtype=acc)
    for i0 in range(0, n_img, chunk):
        blocks = xm[i0:i0 + chunk].astype(acc, copy=False)
        for ax, (ix, inside) in enumerate(index):
            blocks = xp.take(blocks, ix, axis=1 + ax)
            if inside is not None:
                shape = [1] * blocks.ndim
                shape[1 + ax] = -1
                blocks = xp.where(inside.reshape(shape), blocks, acc.type(plan.cval))
        m = blocks.shape[0]
        blocks = blocks.reshape((m,) + tuple(v for g in geo for v in (g[2], g[0]))).transpose(to_blocks)
        spec = xp.fft.rfftn(blocks, s=lengths, axes=t_axes)
        del blocks
        spec *= kf.astype(spec.dtype, copy=False)
        r = xp.fft.irfftn(spec, s=lengths, axes=t_axes)
        del spec
        r = r[(slice(None),) * (1 + nd) + keep].transpose(to_output)
        y[i0:i0 + m] = r.reshape((m,) + y.shape[1:]).astype(acc, copy=False)
    return y[(slice(None),) + tuple(slice(0, o) for o in plan.out_sliding)]
