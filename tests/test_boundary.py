"""The boundary index maps and pad_into equal numpy.pad, wide pads included."""
import numpy as np
import pytest

from gpuconv.backends.numpy.pad import pad_into
from gpuconv.boundary import boundary_index


@pytest.mark.parametrize("mode", ["edge", "wrap", "symmetric", "reflect"])
def test_index_map_equals_numpy_pad(mode):
    for n in range(1, 9):
        x = np.arange(n) * 10 + 1
        for lo in range(0, 26, 5):
            for hi in (0, 1, 7, 25):
                expect = np.pad(x, (lo, hi), mode=mode)
                assert np.array_equal(x[boundary_index(np.arange(-lo, n + hi), n, mode)], expect), (n, lo, hi)


@pytest.mark.parametrize("mode", ["constant", "edge", "wrap", "symmetric", "reflect"])
def test_pad_into_equals_numpy_pad(mode, rng):
    x = rng.standard_normal((3, 4, 5, 2))
    lo, hi = (1, 9, 0), (6, 2, 3)
    widths = [(0, 0)] + list(zip(lo, hi))
    expect = np.pad(x, widths, mode=mode, **({"constant_values": 2.5} if mode == "constant" else {}))
    got = pad_into(x, lo, hi, mode, cval=2.5)
    assert got.flags.c_contiguous and np.array_equal(got, expect)


def test_pad_into_converts_dtype(rng):
    x = rng.integers(0, 256, (2, 5, 5), dtype=np.uint8)
    got = pad_into(x, (2, 2), (2, 2), "edge", dtype=np.float32)
    assert got.dtype == np.float32 and np.array_equal(got, np.pad(x, ((0, 0), (2, 2), (2, 2)), mode="edge"))


def test_unknown_mode_rejected():
    with pytest.raises(ValueError, match="no index map"):
        boundary_index(0, 3, "constant")
