// conv_depthwise.cu — kernel banks with one input channel per group (groups == C:
// depthwise and channel-multiplier layers), where a GEMM would have a K of kh * kw only.
//
// Computes, for every output element (n, oc, oy, ox), with group = oc / og reading input
// channel `group` alone:
//     y[n, oc, oy, ox] = epilogue(act(bias[oc] + sum_{ky,kx} w[oc, ky, kx] *
//                        xp[n, group, oy*sy + ky*dy - pad_y, ox*sx + kx*dx - pad_x]))
// with xp the input padded by numpy.pad(mode=BOUNDARY) (zeros for the constant mode).
//
// Tile:        none: one output per thread, the outputs walked in y's memory order
//              (channels fastest for NHWC, columns fastest for NCHW), so neighbouring
//              threads read neighbouring inputs and L1 serves the window overlap
// Threads:     256 per block, grid-stride over all N * O * Ho * Wo outputs
// Shared:      none
// Assumes:     cg == 1; the geometry and arrays as in conv_igemm.cu.
#include "gpuconv_igemm.cuh"

template <typename Tin, typename Tout, typename Acc, bool CL, int BOUNDARY>
__global__ void __launch_bounds__(256)
conv_depthwise(const Tin* __restrict__ x, Tout* __restrict__ y, const GcConvGeometry g,
               const Acc* __restrict__ w, const Acc* __restrict__ bias, const GcEpilogue<Acc> ep) {
    const long long total = g.m_total * g.o;
    const int h = (int)g.h, wd = (int)g.w, kh = (int)g.kh, kw = (int)g.kw;
    for (long long e = (long long)blockIdx.x * 256 + threadIdx.x; e < total; e += (long long)gridDim.x * 256) {
        long long n, oc, oy, ox, r;
        if (CL) {                                        // (n, oy, ox, oc)
            oc = e % g.o; r = e / g.o;
            ox = r % g.wo; r /= g.wo;
            oy = r % g.ho; n = r / g.ho;
        } else {                                         // (n, oc, oy, ox)
            ox = e % g.wo; r = e / g.wo;
            oy = r % g.ho; r /= g.ho;
            oc = r % g.o; n = r / g.o;
        }
        const Tin* xc = x + n * g.x_stride[0] + (oc / g.og) * g.x_stride[1];
        const Acc* wc = w + oc * g.w_stride[0];
        const int iy0 = (int)(oy * g.step[0] - g.pad[0]), ix0 = (int)(ox * g.step[1] - g.pad[1]);
        Acc acc = (Acc)0;
        for (int ky = 0; ky < kh; ++ky) {
            const int iy = gc_remap<BOUNDARY, int>(iy0 + ky * (int)g.dil[0], h);
            for (int kx = 0; kx < kw; ++kx) {
                const int ix = gc_remap<BOUNDARY, int>(ix0 + kx * (int)g.dil[1], wd);
                // the constant border reads zeros (0 * w, as numpy's padded matmul: inf w gives NaN)
                const Acc v = (iy < 0 || ix < 0) ? (Acc)0 : gc_to_acc<Acc>(gc_load(xc + iy * g.x_stride[2] + ix * g.x_stride[3]));
                acc = fma(__ldg(wc + (ky * kw + kx) * g.w_stride[2]), v, acc);
            }
        }
        gc_conv_store<Tout, Acc>(y, n * g.y_stride[0] + oy * g.y_stride[2] + ox * g.y_stride[3], oc, acc, g, bias,
                                 ep);
    }
}
