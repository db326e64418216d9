// correlate_generic.cu — every correlate call the tiled fast path does not take: 1-, 2- or
// 3-D kernels of any size, any stride and dilation per axis, channels folded along x.
//
// Computes, for every image b and output point (oz, oy, ox):
//     y[b, oz, oy, ox] = epilogue( sum_{kz, ky, kx} w[kz, ky, kx] *
//                        xp[b, oz*sz + kz*dz, oy*sy + ky*dy, ox*sx + kx*dx] )
// with xp = numpy.pad(x, pad_lo.., mode=BOUNDARY) as in DESIGN.md 2.1 (x in elements, dx
// already multiplied by the fold).
//
// Tile:        a row segment of BLOCK outputs along x per block; no shared-memory tile
//              (strided / dilated windows overlap too little for a tile to pay, and a
//              large kernel's window would not fit one); neighbouring threads read
//              neighbouring inputs, so the loads coalesce and L1 serves the reuse.
// Threads:     BLOCK = 256 per block, one output each.
// Weights:     from device memory (any count); every thread of a warp reads the same tap,
//              a broadcast.
// Boundary:    a thread whose whole window lies inside the image skips all remapping
//              (the interior fast path); the others remap per tap with gc_remap.
// Grid:        x over output columns, y over output rows and planes (grid-stride),
//              z over the batch (grid-stride).
// Assumes:     a geometry checked by gpuconv/backends/cuda/correlate_plan.py; per-image offsets fit
//              in Idx; output never aliases input.
#include "gpuconv_common.cuh"

#ifndef GC_GENERIC_BLOCK
#define GC_GENERIC_BLOCK 256
#endif

template <typename Tin, typename Tout, typename Acc, int BOUNDARY, typename Idx>
__global__ void __launch_bounds__(GC_GENERIC_BLOCK)
correlate_generic(const Tin* __restrict__ x, Tout* __restrict__ y, const GcGeometry g,
                  const Acc* __restrict__ w, const GcEpilogue<Acc> ep, const Acc cval) {
    const Idx ox = (Idx)blockIdx.x * GC_GENERIC_BLOCK + threadIdx.x;
    if (ox >= (Idx)g.out_shape[2]) return;                // no barriers below: safe to leave
    const int kz_n = (int)g.ksize[0], ky_n = (int)g.ksize[1], kx_n = (int)g.ksize[2];
    const int fold = (int)g.fold;
    const long long planes = (long long)g.out_shape[0] * g.out_shape[1];
    const Idx ix0 = ox * (Idx)g.step[2] - (Idx)g.pad_lo[2];
    const Idx x_span = (Idx)(kx_n - 1) * g.dilation[2];

    for (long long b = blockIdx.z; b < g.n_batch; b += gridDim.z) {
        long long in_off, out_off;
        gc_batch_offsets(b, g, in_off, out_off);
        const Tin* xb = x + in_off;
        for (long long p = blockIdx.y; p < planes; p += gridDim.y) {
            const Idx oz = (Idx)(p / g.out_shape[1]), oy = (Idx)(p - (long long)oz * g.out_shape[1]);
            const Idx iz0 = oz * (Idx)g.step[0] - (Idx)g.pad_lo[0];
            const Idx iy0 = oy * (Idx)g.step[1] - (Idx)g.pad_lo[1];
            const bool interior =
                iz0 >= 0 && iz0 + (Idx)(kz_n - 1) * g.dilation[0] < g.in_shape[0] &&
                iy0 >= 0 && iy0 + (Idx)(ky_n - 1) * g.dilation[1] < g.in_shape[1] &&
                ix0 >= 0 && ix0 + x_span < g.in_shape[2];
            Acc acc = (Acc)0;
            int t = 0;                                    // tap index, kz-major as in C order
            for (int kz = 0; kz < kz_n; ++kz) {
                const Idx iz = iz0 + (Idx)kz * g.dilation[0];
                const Idx sz = interior ? iz : gc_remap<BOUNDARY, Idx>(iz, (Idx)g.in_shape[0]);
                for (int ky = 0; ky < ky_n; ++ky) {
                    const Idx iy = iy0 + (Idx)ky * g.dilation[1];
                    const Idx sy = interior ? iy : gc_remap<BOUNDARY, Idx>(iy, (Idx)g.in_shape[1]);
                    const Tin* row = xb + sz * (Idx)g.in_stride[0] + sy * (Idx)g.in_stride[1];
                    const bool row_out = sz < 0 || sy < 0;
                    if (interior) {
                        // fast path: the window is inside; no remapping at all
                        for (int kx = 0; kx < kx_n; ++kx, ++t)
                            acc = fma(__ldg(w + t), gc_to_acc<Acc>(gc_load(row + (ix0 + (Idx)kx * g.dilation[2]) * (Idx)g.in_stride[2])), acc);
                    } else {
                        for (int kx = 0; kx < kx_n; ++kx, ++t) {
                            const Idx sx = gc_remap_folded<BOUNDARY, Idx>(ix0 + (Idx)kx * g.dilation[2], (Idx)g.in_shape[2], fold);
                            const Acc v = (row_out || sx < 0) ? cval : gc_to_acc<Acc>(gc_load(row + sx * (Idx)g.in_stride[2]));
                            acc = fma(__ldg(w + t), v, acc);
                        }
                    }
                }
            }
            y[out_off + (long long)oz * g.out_stride[0] + (long long)oy * g.out_stride[1] +
              (long long)ox * g.out_stride[2]] = gc_finish<Tout, Acc>(acc, ep);
        }
    }
}
