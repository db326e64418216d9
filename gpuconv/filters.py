"""Image-level filters: a named or array kernel applied to every channel of an image or a batch
of images, by correlation (OpenCV filter2D's convention).

Images are (H, W), (H, W, C) or (N, H, W, C) arrays (numpy, or CuPy on the GPU). As in
scikit-image, `channel_axis` names the channel axis (None: no channel axis); the two axes
before it, or the last two when there is none, are the image's rows and columns, and every
other axis is a batch axis. The boundary defaults to "edge" (replicate), and integer images
keep their dtype, rounded and saturated (uint8 in, uint8 out) unless `out_dtype` says otherwise.
"""
from __future__ import annotations

import sys

import numpy as np

from . import api, kernels
from .dispatch import is_cupy_array, to_numpy
from .dtypes import compute_dtype, finish

__all__ = ["apply", "as_kernel", "gaussian_blur", "box_blur", "sharpen", "outline", "emboss", "laplacian", "sobel",
           "sobel_magnitude", "spatial_axes"]


def spatial_axes(ndim: int, channel_axis) -> tuple:
    """The (row, column) axes of an image of `ndim` dimensions with `channel_axis`.

    Examples
    --------
    >>> spatial_axes(2, -1), spatial_axes(3, -1), spatial_axes(4, -1), spatial_axes(3, 0), spatial_axes(3, None)
    ((0, 1), (0, 1), (1, 2), (1, 2), (1, 2))
    """
    if ndim < 2:
        raise ValueError(f"image has {ndim} dimension(s); expected (H, W), (H, W, C) or (N, H, W, C)")
    if ndim == 2 or channel_axis is None:
        return (ndim - 2, ndim - 1)
    if isinstance(channel_axis, (bool, np.bool_)) or not isinstance(channel_axis, (int, np.integer)):
        raise TypeError(f"channel_axis={channel_axis!r} must be an int or None")
    if not -ndim <= channel_axis < ndim:
        raise ValueError(f"channel_axis={channel_axis} is out of range for an image with {ndim} dimensions")
    rest = [a for a in range(ndim) if a != channel_axis % ndim]
    return (rest[-2], rest[-1])


def as_kernel(kernel) -> np.ndarray:
    """A 2-D kernel from a name or spec ("sobel:left", "gaussian:11:2") or an array.

    Examples
    --------
    >>> as_kernel("box:2").tolist()
    [[0.25, 0.25], [0.25, 0.25]]
    """
    if isinstance(kernel, str):
        return kernels.get(kernel)
    k = to_numpy("kernel", kernel)
    if k.ndim != 2:
        raise ValueError(f"kernel has shape {k.shape}; image filters take a 2-D kernel (or a name like 'sobel:left')")
    return k


def _default_out_dtype(image, out_dtype):
    """Integer images keep their dtype (saturated); float images keep float."""
    if out_dtype is not None:
        return out_dtype
    dtype = np.dtype(image.dtype)
    return dtype if dtype.kind in "iu" else None


def apply(image, kernel, *, channel_axis=-1, mode="same", boundary="edge", cval=0.0, out_dtype=None, clip=None,
          method="auto", backend=None):
    """Correlate every channel of an image (or batch) with a 2-D kernel or a named kernel.

    Parameters
    ----------
    image : array_like
        (H, W), (H, W, C) or (N, H, W, C); numpy or CuPy.
    kernel : str or array_like
        A name or spec for gpuconv.kernels.get ("sharpen", "gaussian:11:2", "sobel:left") or
        a 2-D array.
    channel_axis : int or None
        The channel axis (default last); None when the image has none.
    mode, boundary, cval, clip, method, backend
        As in gpuconv.correlate; the boundary defaults to "edge" (replicate).
    out_dtype : dtype, optional
        Default: the image's dtype for integer images (rounded, saturated), float otherwise.

    Examples
    --------
    >>> img = np.zeros((5, 5), np.uint8); img[2, 2] = 100
    >>> apply(img, "box")[1:4, 1:4]
    array([[11, 11, 11],
           [11, 11, 11],
           [11, 11, 11]], dtype=uint8)
    """
    axes = spatial_axes(np.ndim(image), channel_axis)
    return api.correlate(image, as_kernel(kernel), mode, boundary=boundary, cval=cval, axes=axes,
                         out_dtype=_default_out_dtype(image, out_dtype), clip=clip, method=method, backend=backend)


def gaussian_blur(image, size: int = 5, sigma: float | None = None, **kwargs):
    """Gaussian blur with a size x size kernel (sigma as in gpuconv.kernels.gaussian).

    >>> gaussian_blur(np.full((6, 6), 80, np.uint8), 3).max()
    np.uint8(80)
    """
    return apply(image, kernels.gaussian(size, sigma), **kwargs)


def box_blur(image, size: int = 3, **kwargs):
    """Mean over a size x size window.

    >>> round(float(box_blur(np.arange(9.0).reshape(3, 3), 3, boundary="constant")[1, 1]), 6)
    4.0
    """
    return apply(image, kernels.box(size), **kwargs)


def sharpen(image, **kwargs):
    """Sharpen ([[0,-1,0],[-1,5,-1],[0,-1,0]]); flat areas are unchanged.

    >>> sharpen(np.full((4, 4), 7, np.uint8))[0].tolist()
    [7, 7, 7, 7]
    """
    return apply(image, kernels.sharpen(), **kwargs)


def outline(image, **kwargs):
    """Outline / edge detector; flat areas give 0 (negative responses saturate to 0 for uint8).

    >>> outline(np.full((4, 4), 9.0)).max()
    np.float64(0.0)
    """
    return apply(image, kernels.outline(), **kwargs)


def emboss(image, **kwargs):
    """Emboss ([[-2,-1,0],[-1,1,1],[0,1,2]]); flat areas are unchanged.

    >>> emboss(np.full((3, 3), 5.0))[1, 1]
    np.float64(5.0)
    """
    return apply(image, kernels.emboss(), **kwargs)


def laplacian(image, **kwargs):
    """Laplacian ([[0,1,0],[1,-4,1],[0,1,0]]).

    >>> laplacian(np.full((3, 3), 5.0))[1, 1]
    np.float64(0.0)
    """
    return apply(image, kernels.laplacian(), **kwargs)


def sobel(image, direction: str = "left", **kwargs):
    """One Sobel kernel: "left", "right", "top" or "bottom" (gpuconv.kernels.sobel).

    >>> ramp = np.tile(np.arange(5.0), (5, 1))          # brighter to the right
    >>> float(sobel(ramp, "right")[2, 2]), float(sobel(ramp, "left")[2, 2])
    (8.0, -8.0)
    """
    return apply(image, kernels.sobel(direction), **kwargs)


def sobel_magnitude(image, *, channel_axis=-1, boundary="edge", out_dtype=None, backend=None, **kwargs):
    """Gradient magnitude sqrt(gx**2 + gy**2) of the left and top Sobel responses, per channel.

    Both responses are computed in the compute dtype and combined before the single cast, so
    a uint8 image gives a saturated uint8 magnitude.

    >>> ramp = np.tile(np.arange(5.0), (5, 1))
    >>> float(sobel_magnitude(ramp)[2, 2])
    8.0
    """
    target = _default_out_dtype(image, out_dtype)
    kw = dict(channel_axis=channel_axis, boundary=boundary, backend=backend, **kwargs)
    gx = apply(image, kernels.sobel("left"), out_dtype=_float_dtype(image), **kw)
    gy = apply(image, kernels.sobel("top"), out_dtype=_float_dtype(image), **kw)
    xp = sys.modules["cupy"] if is_cupy_array(gx) else np
    magnitude = xp.sqrt(gx * gx + gy * gy)
    return magnitude if target is None else finish(magnitude, np.dtype(target))


def _float_dtype(image):
    """The float dtype the responses are combined in: the image's compute dtype."""
    return compute_dtype(np.dtype(image.dtype) if hasattr(image, "dtype") else np.asarray(image).dtype)
