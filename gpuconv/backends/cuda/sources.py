"""Find the CUDA sources and give each as one text.

The sources live in kernels_cuda/ (a checkout) or gpuconv/kernels_cuda/ (an installed
wheel). Local `#include "x.cuh"` lines are inlined here, so the text the compiler's cache
hashes is the whole program: editing a header recompiles what uses it.
"""
from __future__ import annotations

import functools
import re
from importlib import resources
from pathlib import Path

_INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"\s*$')


def kernel_dir() -> Path:
    """The folder holding the .cu/.cuh sources.

    Examples
    --------
    >>> (kernel_dir() / "correlate_tiled.cu").is_file()
    True
    """
    checkout = Path(__file__).resolve().parents[3] / "kernels_cuda"
    if checkout.is_dir():
        return checkout
    installed = Path(str(resources.files("gpuconv"))) / "kernels_cuda"
    if installed.is_dir():
        return installed
    raise FileNotFoundError(f"CUDA sources not found in {checkout} or {installed}; reinstall gpuconv")


def inline_includes(text: str, root: Path, seen: set | None = None) -> str:
    """`text` with each local `#include "name"` replaced by the file root/name (recursively,
    each file once).

    Examples
    --------
    >>> "struct GcGeometry" in inline_includes('#include "gpuconv_common.cuh"', kernel_dir())
    True
    """
    seen = set() if seen is None else seen
    lines = []
    for line in text.splitlines():
        m = _INCLUDE.match(line)
        if not m:
            lines.append(line)
            continue
        name = m.group(1)
        if name in seen:
            continue
        seen.add(name)
        path = root / name
        if not path.is_file():
            raise FileNotFoundError(f"{name} is included but not in {root}")
        lines.append(inline_includes(path.read_text(), root, seen))
    return "\n".join(lines)


@functools.lru_cache(maxsize=None)
def kernel_source(filename: str) -> str:
    """The text of kernels_cuda/`filename` with its local includes inlined (each once).

    Examples
    --------
    >>> "struct GcGeometry" in kernel_source("correlate_generic.cu")
    True
    """
    root = kernel_dir()
    path = root / filename
    if not path.is_file():
        raise FileNotFoundError(f"{filename} is not in {root}")
    return inline_includes(path.read_text(), root, {filename})
