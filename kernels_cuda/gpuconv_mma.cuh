// gpuconv_mma.cuh — warp-level tensor-core products (mma.sync, sm_80 and newer) without
// any CUDA header, and their emulation for the host build.
//
// gc_mma_tf32: D(16x8) += A(16x8) * B(8x8), tf32 operands, float32 accumulators
// gc_mma_f16:  D(16x8) += A(16x16) * B(16x8), binary16 operands, float32 accumulators
// Fragments follow the PTX ISA layouts for mma.m16n8k8 (.tf32) and mma.m16n8k16 (.f16),
// with g = lane / 4 and t = lane % 4:
//   tf32 A: a0 (g, t)  a1 (g+8, t)  a2 (g, t+4)  a3 (g+8, t+4)       [row, k]
//   tf32 B: b0 (t, g)  b1 (t+4, g)                                     [k, col]
//   f16  A: a0 (g, 2t..2t+1)  a1 (g+8, 2t..)  a2 (g, 2t+8..)  a3 (g+8, 2t+8..)
//   f16  B: b0 (2t..2t+1, g)  b1 (2t+8..2t+9, g)     (the lower k in the low 16 bits)
//   D:      d0 (g, 2t)  d1 (g, 2t+1)  d2 (g+8, 2t)  d3 (g+8, 2t+1)
// The host versions (the CPU emulator) exchange the warp's registers through static
// memory between two block barriers, then compute each lane's D from the operands of all
// 32 lanes by the same tables, so a fragment built in the wrong place shows in the tests.
// They assume one-dimensional blocks whose threads all reach every call (as on the GPU,
// where mma.sync needs the whole warp).
#pragma once
#include "gpuconv_common.cuh"

// float32 -> tf32 bits (round to nearest, ties away: cvt.rna.tf32.f32)
__device__ __forceinline__ unsigned gc_tf32(float f) {
#ifdef __CUDA_ARCH__
    unsigned r;
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(f));
    return r;
#else
    unsigned u;
    __builtin_memcpy(&u, &f, 4);
    if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0x1000u) & 0xffffe000u;   // finite: round
    return u;
#endif
}

// Two binary16 values (bits) in one register, `lo` at the lower k.
__device__ __forceinline__ unsigned gc_pack_half2(unsigned short lo, unsigned short hi) {
    return (unsigned)lo | ((unsigned)hi << 16);
}

#ifndef __CUDA_ARCH__
namespace gc_mma_emu {
inline float bits_f32(unsigned u) { float f; __builtin_memcpy(&f, &u, 4); return f; }
inline float half_f32(unsigned short h) { gc_half v; v.bits = h; return gc_half_to_float(v); }
inline unsigned g_a[64][32][4], g_b[64][32][2];   // [warp][lane][register]

// Publish this lane's operands, wait for the block, then compute D from everyone's.
template <typename ElemA, typename ElemB>
inline void run(float (&d)[4], const unsigned (&a)[4], const unsigned (&b)[2], int K, ElemA elem_a, ElemB elem_b) {
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    for (int r = 0; r < 4; ++r) g_a[warp][lane][r] = a[r];
    for (int r = 0; r < 2; ++r) g_b[warp][lane][r] = b[r];
    __syncthreads();
    const int g = lane / 4, t = lane % 4;
    for (int r = 0; r < 4; ++r) {
        const int row = g + (r >= 2 ? 8 : 0), col = 2 * t + (r & 1);
        float acc = d[r];
        for (int k = 0; k < K; ++k) acc = std::fma(elem_a(warp, row, k), elem_b(warp, k, col), acc);
        d[r] = acc;
    }
    __syncthreads();                                    // nobody overwrites the exchange early
}
}  // namespace gc_mma_emu
#endif

__device__ __forceinline__ void gc_mma_tf32(float (&d)[4], const unsigned (&a)[4], const unsigned (&b)[2]) {
#ifdef __CUDA_ARCH__
    asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#else
    using namespace gc_mma_emu;
    run(d, a, b, 8,
        [](int w, int row, int k) { return bits_f32(g_a[w][(row % 8) * 4 + k % 4][(row >= 8) + 2 * (k >= 4)]); },
        [](int w, int k, int col) { return bits_f32(g_b[w][col * 4 + k % 4][k >= 4]); });
#endif
}

__device__ __forceinline__ void gc_mma_f16(float (&d)[4], const unsigned (&a)[4], const unsigned (&b)[2]) {
#ifdef __CUDA_ARCH__
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#else
    using namespace gc_mma_emu;
    run(d, a, b, 16,
        [](int w, int row, int k) {
            const unsigned reg = g_a[w][(row % 8) * 4 + (k % 8) / 2][(row >= 8) + 2 * (k >= 8)];
            return half_f32((unsigned short)(k % 2 ? reg >> 16 : reg & 0xffff));
        },
        [](int w, int k, int col) {
            const unsigned reg = g_b[w][col * 4 + (k % 8) / 2][k >= 8];
            return half_f32((unsigned short)(k % 2 ? reg >> 16 : reg & 0xffff));
        });
#endif
}
