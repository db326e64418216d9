"""Slow, obviously correct float64 references, independent of gpuconv's own code.

They re-derive the pads from DESIGN.md 2.1 and sum explicit taps over numpy.pad'ed input.
"""
import itertools

import numpy as np


def _pads(n, k, mode, s, d):
    e = d * (k - 1) + 1
    if mode == "valid":
        return 0, 0, max(0, (n - e) // s + 1) if n >= e else 0
    if mode == "same":
        lo = e // 2
        return lo, e - 1 - lo, -(-n // s)
    return e - 1, e - 1, (n + e - 2) // s + 1


def _tuple(v, n):
    return tuple(v) if isinstance(v, (tuple, list)) else (v,) * n


def correlate(x, k, mode="full", boundary="constant", cval=0.0, stride=1, dilation=1, axes=None):
    """float64 correlation by np.pad and a loop over kernel taps."""
    x = np.asarray(x, dtype=np.float64)
    k = np.asarray(k, dtype=np.float64)
    nd = k.ndim
    axes = tuple(range(x.ndim - nd, x.ndim)) if axes is None else tuple(a % x.ndim for a in _tuple(axes, 1))
    s, d = _tuple(stride, nd), _tuple(dilation, nd)
    trailing = tuple(range(x.ndim - nd, x.ndim))
    xm = np.moveaxis(x, axes, trailing)
    pads = [_pads(n, kk, mode, ss, dd) for n, kk, ss, dd in zip(xm.shape[-nd:], k.shape, s, d)]
    widths = [(0, 0)] * (x.ndim - nd) + [(lo, hi) for lo, hi, _ in pads]
    if boundary == "constant":
        xp = np.pad(xm, widths, mode="constant", constant_values=cval)
    else:
        xp = np.pad(xm, widths, mode=boundary)
    outs = [o for _, _, o in pads]
    y = np.zeros(xm.shape[:-nd] + tuple(outs))
    if 0 not in y.shape:
        for idx in itertools.product(*[range(n) for n in k.shape]):
            sl = tuple(slice(j * dd, j * dd + (o - 1) * ss + 1, ss) for j, dd, o, ss in zip(idx, d, outs, s))
            y += k[idx] * xp[(Ellipsis,) + sl]
    return np.moveaxis(y, trailing, axes)


def conv_nchw(x, w, bias=None, stride=1, padding=0, dilation=1, groups=1, boundary="constant"):
    """float64 kernel-bank correlation, (N, C, *S) x (O, C/g, *k) -> (N, O, *So); padding
    is an int/tuple (lo = hi) or an explicit list of (lo, hi) pairs."""
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    nd = w.ndim - 2
    s, d = _tuple(stride, nd), _tuple(dilation, nd)
    if isinstance(padding, list):
        pads = padding
    else:
        p = _tuple(padding, nd)
        pads = [(pp, pp) for pp in p]
    widths = [(0, 0), (0, 0)] + pads
    xp = np.pad(x, widths) if boundary == "constant" else np.pad(x, widths, mode=boundary)
    n, c = x.shape[:2]
    o = w.shape[0]
    cg, og = c // groups, o // groups
    outs = [max(0, (xp.shape[2 + i] - (d[i] * (w.shape[2 + i] - 1) + 1)) // s[i] + 1)
            if xp.shape[2 + i] >= d[i] * (w.shape[2 + i] - 1) + 1 else 0 for i in range(nd)]
    y = np.zeros((n, o) + tuple(outs))
    for g in range(groups if 0 not in y.shape else 0):
        xg = xp[:, g * cg:(g + 1) * cg]
        wg = w[g * og:(g + 1) * og]
        for idx in itertools.product(*[range(kk) for kk in w.shape[2:]]):
            sl = tuple(slice(j * dd, j * dd + (oo - 1) * ss + 1, ss) for j, dd, oo, ss in zip(idx, d, outs, s))
            patch = xg[(slice(None), slice(None)) + sl]  # (N, Cg, *outs)
            y[:, g * og:(g + 1) * og] += np.einsum("nc...,oc->no...", patch, wg[(slice(None), slice(None)) + idx])
    if bias is not None:
        y += np.asarray(bias, dtype=np.float64).reshape((-1,) + (1,) * nd)
    return y


def tolerance(dtype, x, k):
    """An absolute error bound: a few units of the compute dtype's rounding times the
    largest possible |output| (sum |k| * max |x|)."""
    compute = np.float64 if np.dtype(dtype) in (np.float64, np.int32, np.int64, np.uint32, np.uint64) else np.float32
    scale = float(np.abs(np.asarray(k, np.float64)).sum() * max(np.abs(np.asarray(x, np.float64)).max(), 1e-30))
    eps = np.finfo(compute).eps
    return 64 * eps * max(scale, 1.0)
