// conv_igemm_tc.cu — kernel banks (conv2d / conv1d) as an implicit GEMM on tensor cores
// (mma.sync, sm_80 and newer), float32 accumulation.
//
// Computes the same sums as conv_igemm.cu (gpuconv_igemm.cuh has the GEMM view), with the
// operands in the tensor-core format:
//   PREC = 0 (tf32):  float32 x and w rounded to tf32 (10-bit mantissa, round to nearest,
//                     ties away), mma.m16n8k8
//   PREC = 1 (fp16):  x and w as binary16 (float32 values rounded to nearest even, so
//                     values past 65504 become inf), mma.m16n8k16
// and float32 sums, then bias, activation and the epilogue in float32. The error bound the
// host documents and the tests check: |y - exact| <= (2**-10 + (K + 2) * 2**-23) * sum |w x|.
//
// Tile:        BM = 128 output pixels x BN (16, 32, 64 or 128) output channels per block;
//              K in steps of BK = 8 (tf32) or 16 (fp16): one MMA depth per step
// Threads:     256 = 8 warps as WARPS_M x WARPS_N (8x1, 4x2 or 2x4 by BN); a warp owns
//              WM x WN outputs = MI x NI tiles of 16 x 8, MI*NI*4 float accumulators per
//              thread; D fragments are stored straight from registers (every 32-byte
//              sector of y is written whole)
// Shared:      STAGES = 4 copies of A [BK][BM + 8] and B [BK][BN + 8] in the operand type
//              (the pad of 8 makes the fragment reads conflict-free), gathered ahead of use
//              (cp.async for float32 inputs), plus BM row descriptors. Static, < 40 KB.
// Grid:        x over M / BM pixel tiles, y over og / BN channel tiles, z over the groups.
// Assumes:     sm_80+ (the host routes only there); as conv_igemm.cu otherwise.
#include "gpuconv_igemm.cuh"
#include "gpuconv_mma.cuh"

template <>
__device__ __forceinline__ gc_half gc_to_tile<gc_half, float>(float v) { return gc_float_to_half(v); }

// The operand type in shared memory and the MMA depth for each PREC.
template <int PREC> struct GcMmaShape;
template <> struct GcMmaShape<0> { using Ts = float; static constexpr int BK = 8; };
template <> struct GcMmaShape<1> { using Ts = gc_half; static constexpr int BK = 16; };

template <typename Tin, typename Tout, int PREC, int BN, bool CL, bool FLAT, int BOUNDARY>
// 2 blocks per SM (up to 128 registers); the 128-wide tile holds 64 accumulators and
// 24 operand registers per thread and needs more, so 1
__global__ void __launch_bounds__(256, BN >= 128 ? 1 : 2)
conv_igemm_tc(const Tin* __restrict__ x, Tout* __restrict__ y, const GcConvGeometry g,
              const float* __restrict__ w, const float* __restrict__ bias, const GcEpilogue<float> ep) {
    using Ts = typename GcMmaShape<PREC>::Ts;
    constexpr int BM = 128, NT = 256, STAGES = 4, BK = GcMmaShape<PREC>::BK;
    constexpr int LDA = BM + 8, LDB = BN + 8;
    constexpr int WARPS_N = BN >= 128 ? 4 : (BN >= 32 ? 2 : 1), WARPS_M = 8 / WARPS_N;
    constexpr int WM = BM / WARPS_M, WN = BN / WARPS_N, MI = WM / 16, NI = WN / 8;
    static_assert(MI >= 1 && NI >= 1 && WN % 8 == 0, "BN must be 16, 32, 64 or 128");
    using Smem = GcGemmShared<Ts, STAGES, BK, BM, LDA, LDB, FLAT>;
    static_assert(sizeof(Smem) <= 48 * 1024, "tiles exceed static shared memory");
    __shared__ Smem sm;

    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const int gq = lane / 4, tq = lane % 4;               // the fragment tables' g and t
    const int wm0 = (warp % WARPS_M) * WM, wn0 = (warp / WARPS_M) * WN;
    GcKPipeline<BM, BN, BK, LDA, LDB, NT, STAGES, CL, FLAT, BOUNDARY, Ts, Tin, float> pipe(sm, x, w, g);
    const long long n0 = pipe.n0;
    for (long long grp = blockIdx.z; grp < g.groups; grp += gridDim.z) {
        __syncthreads();                                  // rows ready; previous group's tiles consumed
        float acc[MI][NI][4];
#pragma unroll
        for (int i = 0; i < MI; ++i)
#pragma unroll
            for (int j = 0; j < NI; ++j)
#pragma unroll
                for (int r = 0; r < 4; ++r) acc[i][j][r] = 0.0f;

        pipe.start(grp);
        for (int s = 0; s < pipe.steps; ++s) {
            pipe.ready(s);
            const Ts(*sa)[LDA] = sm.a[s % STAGES];
            const Ts(*sb)[LDB] = sm.b[s % STAGES];
            unsigned a[MI][4], b[NI][2];
#pragma unroll
            for (int i = 0; i < MI; ++i) {
                const int mb = wm0 + i * 16 + gq;
                if constexpr (PREC == 0) {
                    a[i][0] = gc_tf32(sa[tq][mb]);
                    a[i][1] = gc_tf32(sa[tq][mb + 8]);
                    a[i][2] = gc_tf32(sa[tq + 4][mb]);
                    a[i][3] = gc_tf32(sa[tq + 4][mb + 8]);
                } else {
                    a[i][0] = gc_pack_half2(sa[2 * tq][mb].bits, sa[2 * tq + 1][mb].bits);
                    a[i][1] = gc_pack_half2(sa[2 * tq][mb + 8].bits, sa[2 * tq + 1][mb + 8].bits);
                    a[i][2] = gc_pack_half2(sa[2 * tq + 8][mb].bits, sa[2 * tq + 9][mb].bits);
                    a[i][3] = gc_pack_half2(sa[2 * tq + 8][mb + 8].bits, sa[2 * tq + 9][mb + 8].bits);
                }
            }
#pragma unroll
            for (int j = 0; j < NI; ++j) {
                const int nb = wn0 + j * 8 + gq;
                if constexpr (PREC == 0) {
                    b[j][0] = gc_tf32(sb[tq][nb]);
                    b[j][1] = gc_tf32(sb[tq + 4][nb]);
                } else {
                    b[j][0] = gc_pack_half2(sb[2 * tq][nb].bits, sb[2 * tq + 1][nb].bits);
                    b[j][1] = gc_pack_half2(sb[2 * tq + 8][nb].bits, sb[2 * tq + 9][nb].bits);
                }
            }
#pragma unroll
            for (int i = 0; i < MI; ++i)
#pragma unroll
                for (int j = 0; j < NI; ++j) {
                    if constexpr (PREC == 0) gc_mma_tf32(acc[i][j], a[i], b[j]);
                    else gc_mma_f16(acc[i][j], a[i], b[j]);
                }
        }
        pipe.finish();

#pragma unroll
        for (int i = 0; i < MI; ++i)
#pragma unroll
            for (int half = 0; half < 2; ++half) {        // D rows g and g + 8
                const GcConvRow r = sm.rows[wm0 + i * 16 + gq + 8 * half];
                if (r.x_off < 0) continue;
#pragma unroll
                for (int j = 0; j < NI; ++j)
#pragma unroll
                    for (int q = 0; q < 2; ++q) {         // D columns 2t and 2t + 1
                        const long long oc = n0 + wn0 + j * 8 + 2 * tq + q;
                        if (oc < g.og)
                            gc_conv_store<Tout, float>(y, r.y_off, grp * g.og + oc, acc[i][j][2 * half + q], g, bias, ep);
                    }
            }
    }
}
