"""Named kernels (DESIGN.md section 5), as float32 numpy arrays.

The values come from the seed documents: identity, box, gaussian, sharpen, outline (edge),
laplacian, the four Sobel kernels, emboss and the two line detectors. `get` parses the
command-line spelling: "gaussian:11:2", "box:5", "sobel:left", "sobel_left", "outline".
"""
from __future__ import annotations

import numpy as np

__all__ = ["identity", "box", "gaussian", "sharpen", "outline", "edge", "laplacian", "sobel", "emboss",
           "line_vertical", "line_horizontal", "names", "get"]

_SOBEL_LEFT = [[1, 0, -1], [2, 0, -2], [1, 0, -1]]
_SOBEL_TOP = [[1, 2, 1], [0, 0, 0], [-1, -2, -1]]
SOBEL_DIRECTIONS = ("left", "right", "top", "bottom")


def _f32(values) -> np.ndarray:
    return np.asarray(values, dtype=np.float32)


# The largest side of a named kernel (and of a kernel file `gpuconv apply` takes): a
# 1025 x 1025 kernel is 4 MB and already costs a million taps per pixel done directly;
# box:100000 would ask for 40 GB before any filtering.
MAX_SIZE = 1025


def _check_size(size) -> int:
    if isinstance(size, (bool, np.bool_)) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"size={size!r} must be an int >= 1")
    if size > MAX_SIZE:
        raise ValueError(f"size={size} is over the limit of {MAX_SIZE} for named kernels")
    return int(size)


def identity(size: int = 3) -> np.ndarray:
    """Centre 1, zeros elsewhere (size x size; for even sizes the centre is size//2).

    >>> identity()
    array([[0., 0., 0.],
           [0., 1., 0.],
           [0., 0., 0.]], dtype=float32)
    """
    size = _check_size(size)
    k = np.zeros((size, size), np.float32)
    k[size // 2, size // 2] = 1
    return k


def box(size: int = 3) -> np.ndarray:
    """Mean filter: ones / size**2.

    >>> float(box(5).sum())
    1.0
    """
    size = _check_size(size)
    return np.full((size, size), 1.0 / size ** 2, np.float32)


def gaussian(size: int = 3, sigma: float | None = None) -> np.ndarray:
    """Normalised 2-D Gaussian, outer(g, g) / sum with g[i] = exp(-(i-(size-1)/2)**2 / (2 sigma**2)).

    Without `sigma`, OpenCV's rule for a size-only Gaussian is used:
    sigma = 0.3*((size-1)*0.5 - 1) + 0.8.

    >>> k = gaussian(5, 1.0); k.shape, round(float(k.sum()), 6)
    ((5, 5), 1.0)
    """
    size = _check_size(size)
    if sigma is None:
        sigma = 0.3 * ((size - 1) * 0.5 - 1) + 0.8
    if isinstance(sigma, (bool, np.bool_)) or not np.isfinite(sigma) or sigma <= 0:
        raise ValueError(f"sigma={sigma!r} must be a finite number > 0")
    i = np.arange(size, dtype=np.float64)
    # (distance / sigma) first: sigma**2 underflows to 0 for sigma below 1e-154 (0/0 = NaN),
    # while this tends to the identity as sigma shrinks
    with np.errstate(over="ignore"):
        g = np.exp(-0.5 * ((i - (size - 1) / 2) / float(sigma)) ** 2)
    k = np.outer(g, g)
    return (k / k.sum()).astype(np.float32)


def sharpen() -> np.ndarray:
    """Sharpen: [[0,-1,0],[-1,5,-1],[0,-1,0]] (sums to 1, so flat areas keep their value).

    >>> float(sharpen().sum())
    1.0
    """
    return _f32([[0, -1, 0], [-1, 5, -1], [0, -1, 0]])


def outline() -> np.ndarray:
    """Edge detector [[-1,-1,-1],[-1,8,-1],[-1,-1,-1]] (also named "edge"); flat areas give 0.

    >>> outline()[1].tolist()
    [-1.0, 8.0, -1.0]
    """
    return _f32([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]])


edge = outline


def laplacian() -> np.ndarray:
    """Laplacian: [[0,1,0],[1,-4,1],[0,1,0]].

    >>> laplacian()[1].tolist()
    [1.0, -4.0, 1.0]
    """
    return _f32([[0, 1, 0], [1, -4, 1], [0, 1, 0]])


def sobel(direction: str = "left") -> np.ndarray:
    """Sobel kernels: left [[1,0,-1],[2,0,-2],[1,0,-1]], right = -left, top
    [[1,2,1],[0,0,0],[-1,-2,-1]], bottom = -top.

    >>> sobel("right")[1]
    array([-2.,  0.,  2.], dtype=float32)
    """
    if direction not in SOBEL_DIRECTIONS:
        raise ValueError(f"direction={direction!r} is not accepted; expected one of {list(SOBEL_DIRECTIONS)}")
    base = _f32(_SOBEL_LEFT if direction in ("left", "right") else _SOBEL_TOP)
    return base if direction in ("left", "top") else np.float32(0) - base  # no -0.0 entries


def emboss() -> np.ndarray:
    """Emboss: [[-2,-1,0],[-1,1,1],[0,1,2]].

    >>> emboss()[0].tolist()
    [-2.0, -1.0, 0.0]
    """
    return _f32([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]])


def line_vertical() -> np.ndarray:
    """Vertical line detector: three rows of [-1, 2, -1].

    >>> line_vertical().shape
    (3, 3)
    """
    return _f32([[-1, 2, -1]] * 3)


def line_horizontal() -> np.ndarray:
    """Horizontal line detector: the transpose of line_vertical.

    >>> line_horizontal()[1].tolist()
    [2.0, 2.0, 2.0]
    """
    return line_vertical().T.copy()


# name -> (factory, number of numeric parameters it takes from a spec)
_FACTORIES = {
    "identity": (identity, 1), "box": (box, 1), "gaussian": (gaussian, 2), "sharpen": (sharpen, 0),
    "outline": (outline, 0), "edge": (outline, 0), "laplacian": (laplacian, 0), "emboss": (emboss, 0),
    "line_vertical": (line_vertical, 0), "line_horizontal": (line_horizontal, 0),
}


def names() -> list:
    """Every spelling `get` accepts without parameters, e.g. for a gallery.

    >>> "sobel_left" in names() and "gaussian" in names()
    True
    """
    return sorted(list(_FACTORIES) + [f"sobel_{d}" for d in SOBEL_DIRECTIONS])


def get(spec: str) -> np.ndarray:
    """A named kernel from its command-line spelling.

    "name", "name:size" (identity, box, gaussian), "gaussian:size:sigma",
    "sobel:direction" or "sobel_direction".

    Examples
    --------
    >>> get("gaussian:11:2").shape, get("sobel:top")[0].tolist()
    ((11, 11), [1.0, 2.0, 1.0])
    """
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"kernel spec {spec!r} must be a non-empty string like 'gaussian:11:2'; known: {names()}")
    name, *params = spec.strip().lower().split(":")
    if name.startswith("sobel"):
        direction = name[len("sobel_"):] if name.startswith("sobel_") else (params[0] if len(params) == 1 else "")
        if (name != "sobel" and params) or (name == "sobel" and len(params) != 1):
            raise ValueError(f"kernel spec {spec!r}: write 'sobel:DIR' or 'sobel_DIR' with DIR in {list(SOBEL_DIRECTIONS)}")
        return sobel(direction)
    if name not in _FACTORIES:
        raise ValueError(f"kernel spec {spec!r}: unknown kernel {name!r}; known: {names()}")
    factory, n_params = _FACTORIES[name]
    if len(params) > n_params:
        raise ValueError(f"kernel spec {spec!r}: {name} takes at most {n_params} parameter(s), got {len(params)}")
    try:
        values = [int(params[0])] if params else []
        values += [float(p) for p in params[1:]]
    except ValueError:
        raise ValueError(f"kernel spec {spec!r}: parameters must be numbers (size an int)") from None
    return factory(*values)
