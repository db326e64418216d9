"""The CUDA backend, one module per job:

- backend.py          CudaBackend: device arrays in and out, devices, streams, methods, `out=`
- correlate_plan.py   which correlate kernel and template instance, launch shape, geometry
- conv_plan.py        the same for kernel banks (implicit GEMM, tensor cores, depthwise)
- blocks.py           the by-value parameter blocks (numpy twins of the C++ structs)
- fft.py              the cuFFT overlap-save method
- cost.py             method="auto": the roofline cost model
- sources.py          finds kernels_cuda/ and inlines its includes
- compiler.py         NVRTC with the project's options, the on-disk cubin cache, parallel builds
- runtime.py          loads cubins through CuPy, marshals arguments, launches
- variants.py         the instances built ahead of time and reported by `gpuconv doctor`
- staging.py          `gpuconv apply`'s batches through pinned memory on their own streams

Only runtime.py uses CuPy itself (backend.py imports it only to say whether it is there);
backend.py, fft.py and staging.py work through the runtime and its array module (the CPU
emulator's in the tests); the rest is pure numpy, tested on any machine.
"""
