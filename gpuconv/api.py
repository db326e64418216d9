"""The public functions: correlate, convolve, conv2d, conv1d.

Each is a thin shell over one worker: Dask arrays go to gpuconv.dask (lazy, blockwise), every
other array to gpuconv.compute, which checks every argument (gpuconv.checks), builds the plan
(gpuconv.plan) and hands the arrays to the backend chosen by gpuconv.dispatch.
"""
from __future__ import annotations

from . import compute
from .dispatch import array_kind


def _correlate(x, kernel, mode, boundary, cval, stride, dilation, axes, out, out_dtype, clip, method, backend,
               flip):
    if array_kind(x) == "dask":
        from . import dask as gpuconv_dask  # only when dask arrays are in use

        if out is not None:
            raise ValueError("out= is not supported for dask arrays; store the lazy result with dask.array.store")
        fn = gpuconv_dask.convolve if flip else gpuconv_dask.correlate
        return fn(x, kernel, mode, boundary=boundary, cval=cval, stride=stride, dilation=dilation, axes=axes,
                  out_dtype=out_dtype, clip=clip, method=method, backend=backend)
    return compute.correlate_arrays(x, kernel, mode, boundary, cval, stride, dilation, axes, out, out_dtype, clip,
                                    method, backend, flip)


def _conv(nd, x, weight, bias, stride, padding, dilation, groups, boundary, activation, layout, out, out_dtype,
          clip, precision, backend):
    if array_kind(x) == "dask":
        from . import dask as gpuconv_dask  # only when dask arrays are in use

        if out is not None:
            raise ValueError("out= is not supported for dask arrays; store the lazy result with dask.array.store")
        return gpuconv_dask.conv(nd, x, weight, bias, stride, padding, dilation, groups, boundary, activation, layout,
                                 out_dtype, clip, precision, backend=backend)
    return compute.conv_arrays(nd, x, weight, bias, stride, padding, dilation, groups, boundary, activation, layout,
                               out, out_dtype, clip, precision, backend)


def correlate(x, kernel, mode="full", *, boundary="constant", cval=0.0, stride=1, dilation=1, axes=None,
              out=None, out_dtype=None, clip=None, method="auto", backend=None):
    """Sliding-window cross-correlation of `x` with `kernel` over `axes`.

    ``y[i] = sum_j kernel[j] * xp[i*stride + j*dilation]`` along each sliding axis, where
    ``xp = numpy.pad(x, (lo, hi), mode=boundary)`` and (lo, hi) follow `mode`. Every axis
    not in `axes` is a batch axis, filtered independently.

    Parameters
    ----------
    x : array_like
        Input of any dimension >= kernel.ndim: numpy array, nested list, or a CPU DLPack
        producer such as a torch tensor (returned as the same kind).
    kernel : array_like
        1-, 2- or 3-D weights; cast to the compute dtype of `x`.
    mode : {"full", "same", "valid"}
        Output extent as in scipy.signal.correlate (default "full"). With effective kernel
        length e = dilation*(k-1)+1: full pads e-1 on both sides, same pads e//2 before and
        e-1-e//2 after (output ceil(n/stride)), valid pads nothing (empty if n < e).
    boundary : {"constant", "edge", "reflect", "symmetric", "wrap"}
        numpy.pad's modes, also for pads wider than the input::

            constant   k k k | a b c d | k k k     (k = cval)
            edge       a a a | a b c d | d d d
            reflect    d c b | a b c d | c b a
            symmetric  c b a | a b c d | d c b
            wrap       b c d | a b c d | a b c
    cval : float
        Fill value for boundary="constant".
    stride, dilation : int or tuple of int
        Per sliding axis, >= 1. The strided result is the stride-1 result taken every
        `stride` samples starting at 0.
    axes : int or tuple of int, optional
        The sliding axes of `x`, one per kernel axis (default: the last kernel.ndim axes).
        Positional: kernel axis i slides along ``axes[i]`` (numpy.fft's rule), so
        ``axes=(1, 0)`` lays the kernel's first axis along x's axis 1.
    out : numpy.ndarray, optional
        Preallocated result; its dtype acts as `out_dtype`. Must not overlap `x`.
    out_dtype : dtype, optional
        Result dtype. Integer types round half to even and saturate (never wrap).
    clip : (lo, hi), optional
        Clamp the result before the cast.
    method : {"auto", "direct", "separable", "fft"}
        Algorithm; all agree within float rounding. "auto" picks by a measured cost model.
    backend : {None, "numpy", "cuda"}
        Override the dispatcher's choice from the array type.

    Returns
    -------
    ndarray
        float32 for float32/float16-compute inputs (float16 stays float16), float64 for
        float64 and 32/64-bit integer inputs, or `out_dtype`.

    Notes
    -----
    Where gpuconv departs from scipy (every other case equals scipy.signal.correlate /
    convolve, and numpy.convolve in 1-D):

    - ``mode="valid"`` with a kernel longer than x along a sliding axis gives an empty
      result; scipy.signal and numpy.convolve swap the operands instead.
    - ``axes`` is positional (above); scipy.ndimage lays the kernel's axes on x's axes in
      sorted order whatever order they are named in. On a (4, 5) x with
      w = [[0, 0, 0], [0, 0, 1]], ``correlate(x, w, "same", axes=(1, 0))`` shifts along
      x's axis 0 (w's first axis lies along x's axis 1), where ndimage shifts along axis 1.
    - Even kernels are centred as scipy.signal centres them ("same" keeps the outputs
      e//2 .. e//2 + n - 1 of "full"), which is not scipy.ndimage's centring:
      ``convolve([1, 2], [1, 1], "same")`` is [1, 3] here and in scipy.signal, [3, 4] in
      scipy.ndimage.convolve.
    - Two 0-d arrays give their product as a 0-d array, as in scipy.signal; an empty
      sliding axis gives an empty result in every mode, as scipy does; a zero-size kernel
      is refused (scipy returns an empty array).
    - A kernel holding NaN or inf is summed directly whatever `method` says (no SVD, no
      FFT), so NaN and inf reach exactly the outputs whose windows hold them.
    - A dilation so large that the windows' taps land almost all in the padding (say
      10**8 on a few samples) is computed without building the padded array; a result
      that no array could hold ("full" mode with such a dilation) is refused.
    - Results are bit-identical from run to run on the same machine and inputs.
    - gpuconv does not track gradients: a torch tensor with ``requires_grad=True`` is
      read detached.

    Examples
    --------
    A single bright pixel reproduces the kernel (correlation does not flip it):

    >>> import numpy as np, gpuconv
    >>> img = np.zeros((3, 3)); img[1, 1] = 1
    >>> gpuconv.correlate(img, [[1, 2, 3], [4, 5, 6], [7, 8, 9]], mode="same")
    array([[9., 8., 7.],
           [6., 5., 4.],
           [3., 2., 1.]])
    """
    return _correlate(x, kernel, mode, boundary, cval, stride, dilation, axes, out, out_dtype, clip, method,
                      backend, False)


def convolve(x, kernel, mode="full", *, boundary="constant", cval=0.0, stride=1, dilation=1, axes=None,
             out=None, out_dtype=None, clip=None, method="auto", backend=None):
    """Convolution: ``convolve(x, k) == correlate(x, flip(k))`` in every mode.

    Same parameters as :func:`correlate`. Without stride and dilation, with zero boundary,
    the result equals scipy.signal.convolve (and numpy.convolve in 1-D), except where the
    Notes of :func:`correlate` say otherwise ("valid" with a kernel longer than x is empty
    here; scipy and numpy swap the operands).

    Examples
    --------
    >>> import gpuconv
    >>> gpuconv.convolve([1, 2, 3, 4, 5], [2, 3, 4])
    array([ 2.,  7., 16., 25., 34., 31., 20.])
    """
    return _correlate(x, kernel, mode, boundary, cval, stride, dilation, axes, out, out_dtype, clip, method,
                      backend, True)


def conv2d(x, weight, bias=None, *, stride=1, padding=0, dilation=1, groups=1, boundary="constant",
           activation=None, layout="NCHW", out=None, out_dtype=None, clip=None, precision=None, backend=None):
    """Kernel-bank convolution layer (cross-correlation), equal to torch.nn.functional.conv2d.

    Parameters
    ----------
    x : array_like
        (N, C, H, W) or (C, H, W) with layout="NCHW"; (N, H, W, C) or (H, W, C) with "NHWC".
    weight : array_like
        (O, C/groups, kh, kw) for NCHW, (O, kh, kw, C/groups) for NHWC.
    bias : array_like, optional
        (O,), added before the activation.
    stride, dilation : int or (int, int)
    padding : int, (int, int), "same" or "valid"
        "same" pads d*(k-1) in total with floor half before (torch's alignment); with
        stride s the output is ceil(H/s).
    groups : int
        Divides C and O; each group of O/groups outputs sees C/groups inputs.
    boundary : str
        numpy.pad mode of the padded border (default zeros), as in :func:`correlate`.
    activation : {None, "relu", "leaky_relu", "tanh", "sigmoid"}
        Fused after the bias; leaky_relu has slope 0.01.
    layout : {"NCHW", "NHWC"}
        Storage order of x, weight and the result.
    out, out_dtype, clip
        As in :func:`correlate`.
    precision : {None, "float32", "tf32", "float16"}
        How float32/float16 inputs are computed on GPUs (other dtypes ignore it):

        - "float32": exact float32 FMA arithmetic, within float32 rounding of the exact sum.
          The default for float32 input.
        - "tf32": tensor cores (sm_80+) with float32 input rounded to tf32 (10-bit mantissa).
        - "float16": tensor cores with operands rounded to binary16 (float32 values beyond
          65504 become inf). The default for float16 input.

        With tensor cores the sums are float32 and, for K = (C/groups)*kh*kw products per
        output, ``|y - exact| <= (2**-10 + (K + 2) * 2**-23) * sum|w * x|`` before the final
        cast to the result dtype (tested). Before sm_80 every precision runs the exact float32
        kernel, which meets every bound; so does the numpy backend, which always computes
        exactly in the compute dtype.

    Returns
    -------
    ndarray
        (N, O, Ho, Wo) for NCHW, (N, Ho, Wo, O) for NHWC (batch axis dropped if x had none).

    Notes
    -----
    gpuconv does not track gradients: torch tensors with ``requires_grad=True`` are read
    detached and the result has no autograd history. Zero input channels (C = 0) give the
    empty sums torch gives: the bias (or zeros), through the activation.

    Examples
    --------
    One output channel reducing a 3-channel image (a 3-D "cuboid" kernel), on a bright pixel:

    >>> import numpy as np, gpuconv
    >>> x = np.zeros((1, 3, 3, 3)); x[0, :, 1, 1] = 1
    >>> w = np.ones((1, 3, 3, 3))
    >>> gpuconv.conv2d(x, w, padding=1)[0, 0]
    array([[3., 3., 3.],
           [3., 3., 3.],
           [3., 3., 3.]])
    """
    return _conv(2, x, weight, bias, stride, padding, dilation, groups, boundary, activation, layout, out, out_dtype,
                 clip, precision, backend)


def conv1d(x, weight, bias=None, *, stride=1, padding=0, dilation=1, groups=1, boundary="constant",
           activation=None, layout="NCL", out=None, out_dtype=None, clip=None, precision=None, backend=None):
    """Kernel-bank 1-D convolution layer, equal to torch.nn.functional.conv1d.

    Same parameters as :func:`conv2d` with one spatial axis: x (N, C, L) or (C, L) for
    layout="NCL", (N, L, C) or (L, C) for "NLC"; weight (O, C/groups, k) or (O, k, C/groups).

    Examples
    --------
    >>> import numpy as np, gpuconv
    >>> gpuconv.conv1d(np.array([[[1.0, 2, 3, 4, 5]]]), np.array([[[4.0, 3, 2]]]))
    array([[[16., 25., 34.]]])
    """
    return _conv(1, x, weight, bias, stride, padding, dilation, groups, boundary, activation, layout, out, out_dtype,
                 clip, precision, backend)
