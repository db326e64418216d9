"""Which optional dependencies (extras) are installed, checked without importing them.

Importing cv2 costs ~0.2 s and a few threads, so callers ask here first and import on first use.
"""

from __future__ import annotations

import functools
import importlib.util
import sys


@functools.lru_cache(maxsize=None)
def opencv_available() -> bool:
    """Whether OpenCV (the `opencv` extra) can be imported; checked once, cv2 is not imported.

    Examples
    --------
    >>> isinstance(opencv_available(), bool)
    True
    """
    if sys.modules.get("cv2") is not None:
        return True
    try:
        return importlib.util.find_spec("cv2") is not None
    except (ImportError, ValueError):   # a half-initialised module in sys.modules
        return False
