"""gpuconv on Dask arrays: filtering arrays larger than memory, or spread over a cluster.

`correlate`, `convolve`, `conv2d` and `conv1d` take a dask.array.Array (numpy- or
CuPy-backed chunks) and return a lazy Dask array equal to the in-memory result. The plain
`gpuconv.correlate(...)` etc. send Dask arrays here.

How a call becomes a graph (every sliding axis):

1. The boundary is applied at the true edges of the array, with numpy.pad's meaning for any
   pad width (gpuconv.boundary's index maps; dask.array.pad is wrong for pads wider than the
   array), never at chunk edges.
2. The padded axis is rechunked only where needed: interior chunks must be multiples of the
   stride (so every chunk's outputs start on the strided grid) and at least the kernel's span
   e = dilation*(k-1)+1 long (so a chunk's halo fits in its neighbour); the last chunk must
   hold at least one window.
3. Each chunk borrows e-1 samples from its right neighbour (dask.array.overlap with an
   asymmetric depth) and is correlated in "valid" mode with the stride and dilation by the
   ordinary in-memory function, which picks the backend from the chunk type. A chunk of c
   samples gives c/stride outputs; the last gives (c-e)//stride + 1; they tile the result.

Kernel-bank weights and biases enter the graph once, as delayed objects, so a distributed
scheduler sends them to each worker once rather than with every task.

Examples
--------
>>> import numpy as np, dask.array as da, gpuconv
>>> x = da.from_array(np.arange(40.0).reshape(4, 10), chunks=(2, 3))
>>> y = gpuconv.correlate(x, np.ones((3, 3)), "same", boundary="edge")
>>> bool(np.allclose(y.compute(), gpuconv.correlate(x.compute(), np.ones((3, 3)), "same", boundary="edge")))
True
"""
from __future__ import annotations

import dask
import dask.array as da
import numpy as np

from . import compute
from .boundary import boundary_index
from .dispatch import to_numpy
from .backends.numpy.gather import sparse_windows
from .dtypes import representable
from .plan import conv_plan, correlate_plan, effective_length

__all__ = ["correlate", "convolve", "conv2d", "conv1d"]


def pad_axis(x: da.Array, axis: int, lo: int, hi: int, boundary: str, cval: float) -> da.Array:
    """numpy.pad of one axis of a Dask array, exact for pads of any width.

    Examples
    --------
    >>> x = da.from_array(np.arange(3), chunks=2)
    >>> pad_axis(x, 0, 5, 6, "symmetric", 0.0).compute().tolist()
    [1, 2, 2, 1, 0, 0, 1, 2, 2, 1, 0, 0, 1, 2]
    """
    if lo == 0 and hi == 0:
        return x
    n = x.shape[axis]
    pieces = []
    for count, positions in ((lo, np.arange(-lo, 0)), (None, None), (hi, np.arange(n, n + hi))):
        if count is None:
            pieces.append(x)
        elif count:
            if boundary == "constant":
                # full_like keeps the chunk type (numpy or CuPy); da.full(like=...) does not
                # work in every Dask release
                edge = da.take(x, np.zeros(count, dtype=np.intp), axis=axis)
                pieces.append(da.full_like(edge, cval, dtype=x.dtype))
            else:
                pieces.append(da.take(x, boundary_index(positions, n, boundary), axis=axis))
    return da.concatenate(pieces, axis=axis)


def aligned_chunks(chunks: tuple, span: int, stride: int) -> tuple:
    """Chunk sizes along a padded sliding axis that the blockwise correlation can use.

    Interior chunks become multiples of `stride` and at least max(span, stride) long (merging
    neighbours); the last chunk is at least that long too. Chunks that already qualify are
    kept, so a well-chunked array is not rechunked.

    Examples
    --------
    >>> aligned_chunks((5, 5, 5, 2), span=3, stride=2)
    (4, 6, 4, 3)
    """
    total = sum(chunks)
    minimum = max(span, stride)
    bounds, pos = [], 0
    for c in chunks[:-1]:
        pos += c
        b = pos // stride * stride
        if b - (bounds[-1] if bounds else 0) >= minimum and total - b >= minimum:
            bounds.append(b)
    edges = [0] + bounds + [total]
    return tuple(b - a for a, b in zip(edges[:-1], edges[1:]))


def _output_chunks(chunks: tuple, span: int, stride: int) -> tuple:
    """Outputs per chunk of aligned_chunks: c/stride, and (c-span)//stride + 1 for the last."""
    return tuple(c // stride for c in chunks[:-1]) + ((chunks[-1] - span) // stride + 1,)


def _blockwise_valid(xp: da.Array, sliding: dict, block_fn, dtype, extra_args=(), fixed_axes=()) -> da.Array:
    """Rechunk the padded array, give every chunk its right halo, and apply `block_fn` (a
    'valid' correlation with stride) per chunk. `sliding` maps axis -> (span, stride);
    `fixed_axes` -> output length, for axes the block function replaces whole (channels)."""
    chunks = list(xp.chunks)
    out_chunks = list(xp.chunks)
    for axis, (span, stride) in sliding.items():
        chunks[axis] = aligned_chunks(xp.chunks[axis], span, stride)
        out_chunks[axis] = _output_chunks(chunks[axis], span, stride)
    for axis, length in fixed_axes:
        chunks[axis] = (xp.shape[axis],)
        out_chunks[axis] = (length,)
    if tuple(chunks) != xp.chunks:
        xp = xp.rechunk(tuple(chunks))
    depth = {axis: (0, span - 1) for axis, (span, _) in sliding.items()}
    depth.update({axis: 0 for axis in range(xp.ndim) if axis not in depth})
    xo = da.overlap.overlap(xp, depth=depth, boundary="none")
    meta = xp._meta.astype(dtype) if hasattr(xp._meta, "astype") else np.empty((0,) * xp.ndim, dtype)
    return da.map_blocks(block_fn, xo, *extra_args, chunks=tuple(out_chunks), dtype=dtype, meta=meta)


def _sliding_lengths(plan, ndim: int) -> list:
    """The result's length along each axis of x (None for batch axes)."""
    out = dict(zip(plan.axes, plan.out_sliding))
    return [out.get(a) for a in range(ndim)]


def _empty(shape: tuple, dtype) -> da.Array:
    """An empty result (some output axis has length 0)."""
    return da.empty(shape, dtype=dtype)


def correlate(x: da.Array, kernel, mode="full", *, boundary="constant", cval=0.0, stride=1, dilation=1, axes=None,
              out_dtype=None, clip=None, method="auto", backend=None, flip=False) -> da.Array:
    """gpuconv.correlate over a Dask array; returns a lazy Dask array (see the module notes).

    Same arguments and results as :func:`gpuconv.correlate` (no `out=`: store the result
    with dask.array.store). The kernel is sent with the graph; keep it small.

    Examples
    --------
    >>> x = da.from_array(np.arange(10.0), chunks=4)
    >>> correlate(x, [1.0, 2.0], "valid").compute().tolist()
    [2.0, 5.0, 8.0, 11.0, 14.0, 17.0, 20.0, 23.0, 26.0]
    """
    k = to_numpy("kernel", kernel)
    plan = correlate_plan(x.shape, x.dtype, k, mode, boundary, cval, stride, dilation, axes, out_dtype, clip, method)
    if flip:
        k = k[(slice(None, None, -1),) * k.ndim].copy()
    if plan.n_outputs == 0:
        return _empty(plan.result_shape, plan.result_dtype)
    if sparse_windows(plan):
        # taps mostly in the padding (a huge dilation): no padded array, no halos; each block
        # holds its images' whole sliding axes and the in-memory call gathers the taps
        whole = x.rechunk({a: -1 for a in plan.axes})
        chunks = tuple((o,) if a in plan.axes else c for a, (c, o) in
                       enumerate(zip(whole.chunks, _sliding_lengths(plan, x.ndim))))

        def sparse_block(b):
            return compute.correlate_arrays(b, k, mode, boundary, cval, stride, dilation, plan.axes, None,
                                            plan.result_dtype, plan.clip, plan.method, backend, False)

        return whole.map_blocks(sparse_block, chunks=chunks, dtype=plan.result_dtype)
    xp = x
    if plan.boundary == "constant" and not representable(plan.cval, x.dtype):
        xp = xp.astype(plan.compute_dtype)  # the fill value needs the compute dtype
    sliding = {}
    for axis, lo, hi, kk, s, d in zip(plan.axes, plan.pad_lo, plan.pad_hi, plan.kernel_shape, plan.stride,
                                      plan.dilation):
        xp = pad_axis(xp, axis, lo, hi, plan.boundary, plan.cval)
        sliding[axis] = (effective_length(kk, d), s)

    def block(b):
        return compute.correlate_arrays(b, k, "valid", "constant", 0.0, plan.stride, plan.dilation, plan.axes, None,
                                        plan.result_dtype, plan.clip, plan.method, backend, False)

    return _blockwise_valid(xp, sliding, block, plan.result_dtype)


def convolve(x: da.Array, kernel, mode="full", **kwargs) -> da.Array:
    """gpuconv.convolve over a Dask array: correlate with the flipped kernel.

    Examples
    --------
    >>> convolve(da.from_array(np.array([1, 2, 3, 4, 5]), chunks=2), [2, 3, 4]).compute().tolist()
    [2.0, 7.0, 16.0, 25.0, 34.0, 31.0, 20.0]
    """
    return correlate(x, kernel, mode, flip=True, **kwargs)


def conv(nd: int, x: da.Array, weight, bias, stride, padding, dilation, groups, boundary, activation, layout,
         out_dtype, clip, precision, backend=None) -> da.Array:
    """conv1d (nd=1) / conv2d (nd=2) over a Dask array chunked along the batch and spatial
    axes; the channel axis is gathered into one chunk. Weights and bias travel once per
    worker as delayed objects."""
    w = to_numpy("weight", weight)
    b = None if bias is None else to_numpy("bias", bias)
    plan = conv_plan(nd, x.shape, x.dtype, w, b, stride, padding, dilation, groups, boundary, activation, layout,
                     out_dtype, clip, precision)
    if plan.unbatched:
        x = x[None]
    batched = plan.batched_out_shape
    if 0 in batched:
        y = _empty(batched, plan.result_dtype)
        return y[0] if plan.unbatched else y
    first_spatial = 1 if plan.channels_last else 2
    channel_axis = x.ndim - 1 if plan.channels_last else 1
    xp = x
    sliding = {}
    for i, (lo, hi, kk, s, d) in enumerate(zip(plan.pad_lo, plan.pad_hi, plan.weight_spatial, plan.stride,
                                               plan.dilation)):
        xp = pad_axis(xp, first_spatial + i, lo, hi, plan.boundary, 0.0)
        sliding[first_spatial + i] = (effective_length(kk, d), s)
    w_node = dask.delayed(w, pure=True)
    b_node = None if b is None else dask.delayed(b, pure=True)

    def block(xb, wb, bb=None):  # the chunk is already padded: a "valid" layer per chunk
        return compute.conv_arrays(nd, xb, wb, bb, plan.stride, 0, plan.dilation, plan.groups, "constant",
                                   plan.activation, layout, None, plan.result_dtype, plan.clip, plan.precision,
                                   backend)

    extra = (w_node,) if b_node is None else (w_node, b_node)
    y = _blockwise_valid(xp, sliding, block, plan.result_dtype, extra_args=extra,
                         fixed_axes=((channel_axis, plan.out_channels),))
    return y[0] if plan.unbatched else y


def conv2d(x: da.Array, weight, bias=None, *, stride=1, padding=0, dilation=1, groups=1, boundary="constant",
           activation=None, layout="NCHW", out_dtype=None, clip=None, precision=None, backend=None) -> da.Array:
    """gpuconv.conv2d over a Dask array; returns a lazy Dask array.

    Examples
    --------
    >>> x = da.from_array(np.ones((2, 3, 8, 8)), chunks=(1, 3, 4, 4))
    >>> conv2d(x, np.ones((4, 3, 3, 3)), padding=1).compute()[0, 0, :2, :2].tolist()
    [[12.0, 18.0], [18.0, 27.0]]
    """
    return conv(2, x, weight, bias, stride, padding, dilation, groups, boundary, activation, layout, out_dtype, clip,
                precision, backend)


def conv1d(x: da.Array, weight, bias=None, *, stride=1, padding=0, dilation=1, groups=1, boundary="constant",
           activation=None, layout="NCL", out_dtype=None, clip=None, precision=None, backend=None) -> da.Array:
    """gpuconv.conv1d over a Dask array; returns a lazy Dask array.

    Examples
    --------
    >>> x = da.from_array(np.arange(10.0).reshape(1, 1, 10), chunks=(1, 1, 3))
    >>> conv1d(x, np.ones((1, 1, 3))).compute().ravel().tolist()
    [3.0, 6.0, 9.0, 12.0, 15.0, 18.0, 21.0, 24.0]
    """
    return conv(1, x, weight, bias, stride, padding, dilation, groups, boundary, activation, layout, out_dtype, clip,
                precision, backend)
