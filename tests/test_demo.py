"""`make demo`'s job: seed examples hold, every named kernel gives a PNG."""
import numpy as np

from gpuconv import demo, kernels
from gpuconv.io import read_image


def test_seed_examples_hold():
    for label, got, expected in demo.seed_examples():
        assert got == expected, label


def test_demo_writes_every_kernel(tmp_path):
    assert demo.main(["--out", str(tmp_path)]) == 0
    for name in kernels.names():
        out = read_image(tmp_path / f"{name}.png")
        assert out.shape == (256, 384, 3) and out.dtype == np.uint8
    assert read_image(tmp_path / "gallery.png").ndim == 3


def test_identity_leaves_the_photo_unchanged(tmp_path):
    demo.main(["--out", str(tmp_path)])
    np.testing.assert_array_equal(read_image(tmp_path / "identity.png"), read_image(tmp_path / "input.png"))
