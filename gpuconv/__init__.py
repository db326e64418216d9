"""gpuconv: sliding-window convolution of image batches and kernel banks.

CUDA kernels through CuPy on the GPU, a fast numpy backend on the CPU; the backend follows
the array type. See README.md for a tour.
"""
from . import kernels
from .api import conv1d, conv2d, convolve, correlate
from .dispatch import BackendUnavailableError

__version__ = "0.1.0"
__all__ = ["correlate", "convolve", "conv2d", "conv1d", "kernels", "BackendUnavailableError", "__version__"]
