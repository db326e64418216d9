// conv_igemm.cu — kernel banks (conv2d / conv1d) as an implicit GEMM with exact FMA
// arithmetic in Acc (float32, or float64 for float64 and wide-integer inputs).
//
// Computes, for every group g, output pixel m = (n, oy, ox) and output channel oc of g:
//     y[n, g*og + oc, oy, ox] = epilogue(act(bias[oc] + sum_k A[m, k] * B[k, oc]))
// with A the im2col matrix of the padded input and B the weights (gpuconv_igemm.cuh).
//
// Tile:        BM output pixels x BN output channels per block, K in steps of BK = 8
// Threads:     NT = (BM / TM) * (BN / TN) = 256, one-dimensional
// Per thread:  TM x TN outputs in registers, in runs of 4 consecutive pixels (channels)
//              spaced one warp-row of runs apart, so every operand read from shared memory
//              is a 16-byte read that half a warp shares out conflict-free: per K element
//              TM/4 + TN/4 reads for TM * TN FMAs (8x8: 4 reads, 64 FMAs). Neighbouring
//              threads own neighbouring runs of pixels (NCHW) or channels (NHWC), so the
//              stores of a warp land in few 32-byte sectors.
// Shared:      STAGES copies of A [BK][BM + 4] and B [BK][BN + 4] in Acc (a K step is
//              gathered while earlier ones are consumed: cp.async for float / double
//              inputs on sm_80+, converting loads for the others), and the block's
//              BM row descriptors (GcConvRow). Static, under 48 KB for every configuration
//              the host uses (float: 3 stages, double: 2).
// Grid:        x over M / BM pixel tiles, y over og / BN channel tiles, z over the groups
//              (grid-stride).
// Assumes:     a geometry checked by gpuconv/backends/cuda/conv_plan.py: h, w < 2**31; weights
//              in Acc with the strides given; bias in Acc (any pointer when has_bias = 0);
//              the output never aliases the input.
#include "gpuconv_igemm.cuh"
#include "gpuconv_tile.cuh"

// V consecutive shared-memory values into registers: 16-byte reads where V values fill them.
template <int V, typename Acc>
__device__ __forceinline__ void gc_read_run(const Acc* p, Acc* v) {
    if constexpr ((V * sizeof(Acc)) % 16 == 0) {
        Acc run[V];
        gc_read_row(p, run);
#pragma unroll
        for (int i = 0; i < V; ++i) v[i] = run[i];
    } else {
#pragma unroll
        for (int i = 0; i < V; ++i) v[i] = p[i];
    }
}

template <typename Tin, typename Tout, typename Acc, int BM, int BN, int TM, int TN, int STAGES, bool CL,
          bool FLAT, int BOUNDARY>
// 2 blocks per SM (up to 128 registers); the 8x8 float and every float64 micro-tile need
// more registers than that without spilling, so 1
__global__ void __launch_bounds__((BM / TM) * (BN / TN), (sizeof(Acc) == 8 || TM * TN >= 64) ? 1 : 2)
conv_igemm(const Tin* __restrict__ x, Tout* __restrict__ y, const GcConvGeometry g,
           const Acc* __restrict__ w, const Acc* __restrict__ bias, const GcEpilogue<Acc> ep) {
    constexpr int BK = 8, NT = (BM / TM) * (BN / TN);
    constexpr int LDA = BM + 4, LDB = BN + 4;            // rows stay 16-byte aligned
    constexpr int TR = BM / TM, TC = BN / TN;            // threads along pixels / channels
    constexpr int VM = TM < 4 ? TM : 4, VN = TN < 4 ? TN : 4;  // run lengths
    constexpr int SPAN_M = TR * VM, SPAN_N = TC * VN;    // distance between a thread's runs
    static_assert(STAGES >= 2, "the pipeline needs two stages");
    using Smem = GcGemmShared<Acc, STAGES, BK, BM, LDA, LDB, FLAT>;
    static_assert(sizeof(Smem) <= 48 * 1024, "tiles exceed static shared memory");
    __shared__ Smem sm;

    const int t = threadIdx.x;
    const int tr = CL ? t / TC : t % TR;                 // the fast index follows y's layout
    const int tc = CL ? t % TC : t / TR;
    GcKPipeline<BM, BN, BK, LDA, LDB, NT, STAGES, CL, FLAT, BOUNDARY, Acc, Tin, Acc> pipe(sm, x, w, g);
    const long long n0 = pipe.n0;
    for (long long grp = blockIdx.z; grp < g.groups; grp += gridDim.z) {
        __syncthreads();                                 // rows ready; previous group's tiles consumed
        Acc acc[TM][TN];
#pragma unroll
        for (int i = 0; i < TM; ++i)
#pragma unroll
            for (int j = 0; j < TN; ++j) acc[i][j] = (Acc)0;

        pipe.start(grp);
        for (int s = 0; s < pipe.steps; ++s) {
            pipe.ready(s);
            const int cb = s % STAGES;
#pragma unroll
            for (int kk = 0; kk < BK; ++kk) {
                Acc a[TM], b[TN];
#pragma unroll
                for (int i = 0; i < TM; i += VM) gc_read_run<VM>(&sm.a[cb][kk][(i / VM) * SPAN_M + tr * VM], a + i);
#pragma unroll
                for (int j = 0; j < TN; j += VN) gc_read_run<VN>(&sm.b[cb][kk][(j / VN) * SPAN_N + tc * VN], b + j);
#pragma unroll
                for (int i = 0; i < TM; ++i)
#pragma unroll
                    for (int j = 0; j < TN; ++j) acc[i][j] = fma(a[i], b[j], acc[i][j]);
            }
        }
        pipe.finish();

#pragma unroll
        for (int i = 0; i < TM; ++i) {
            const GcConvRow r = sm.rows[(i / VM) * SPAN_M + tr * VM + i % VM];
            if (r.x_off < 0) continue;
#pragma unroll
            for (int j = 0; j < TN; ++j) {
                const long long oc = n0 + (j / VN) * SPAN_N + tc * VN + j % VN;
                if (oc < g.og) gc_conv_store<Tout, Acc>(y, r.y_off, grp * g.og + oc, acc[i][j], g, bias, ep);
            }
        }
    }
}
