"""The numpy backend: the CPU fallback and the reference for the other backends.

backend.py chooses an engine per call and applies the shared epilogue; the engines are
toeplitz.py (block-Toeplitz GEMMs, 1-D passes), taps.py (few-tap kernels), fft.py
(overlap-save FFT) and bank.py (kernel banks); pad.py pads once with numpy.pad's meaning,
threads.py runs chunks on every core, cost.py is the measured cost model of method="auto".
"""
