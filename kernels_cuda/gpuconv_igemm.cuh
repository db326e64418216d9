// gpuconv_igemm.cuh — the pieces shared by the kernel-bank (conv2d / conv1d) kernels:
// conv_igemm.cu (float FMA), conv_igemm_tc.cu (tensor cores) and conv_depthwise.cu.
//
// A kernel bank is a GEMM per group g:
//     Y[m, oc] = sum_k A[m, k] * B[k, oc]
//     m  = (n, oy, ox)       output pixels, M = N * Ho * Wo rows
//     oc                     output channel within the group, og = O / groups columns
//     k  = (tap, c)          tap = ky * kw + kx, c an input channel of the group
//     A[m, k] = xp[n, g*cg + c, oy*sy + ky*dy - pad_y, ox*sx + kx*dx - pad_x]   (im2col)
//     B[k, oc] = w[g*og + oc, c, ky, kx]
// A is never stored: each block gathers its A tiles from x into shared memory (implicit
// GEMM), remapping the padded border the way numpy.pad does (gc_remap) or reading zeros.
//
// The K loop walks k in steps of BK, in one of two orders:
//   chunked (FLAT = false): tap-major, channels in chunks of BK (cg rounded up to BK with
//       zeros). One tap per step, so the border remap is done once per row and step, and
//       channels-last inputs read BK consecutive channels.
//   flat (FLAT = true): k = tap * cg + c without rounding, for small cg (first layers with
//       C = 1..4, grouped layers), where chunks would be mostly zeros.
// x, y and w are addressed through element strides, so NCHW, NHWC and any strided view
// (out=) are native; only the thread-to-element maps (coalescing) depend on the layout (CL).
#pragma once
#include "gpuconv_common.cuh"

// One conv2d / conv1d call (conv1d: h = kh = 1). 64-bit fields: it lives in the constant
// bank; gpuconv/backends/cuda/blocks.py mirrors it field by field (CONV_GEOMETRY_DTYPE).
struct GcConvGeometry {
    long long m_total;                // N * Ho * Wo
    long long n, c, h, w;             // input batch, channels, height, width
    long long o, groups, cg, og;      // output channels; channels per group in and out
    long long kh, kw, ho, wo;         // kernel and output spatial sizes
    long long step[2], pad[2], dil[2];  // y, x: stride, leading pad, dilation
    long long x_stride[4];            // elements: n, c, h, w (any layout, any sign)
    long long y_stride[4];            // elements: n, o, h, w
    long long w_stride[3];            // elements of the Acc weight array: o, c, tap
    long long has_bias;               // bias[o] is added before the activation
    long long activation;             // GcActivation
};

enum GcActivation { GC_ACT_NONE = 0, GC_ACT_RELU = 1, GC_ACT_LEAKY = 2, GC_ACT_TANH = 3, GC_ACT_SIGMOID = 4 };

// Bias and activation (numpy twin: backends/numpy/bank.py apply_activation). Comparisons with NaN are
// false, so NaN passes through every branch, as it does through numpy.maximum.
template <typename Acc>
__device__ __forceinline__ Acc gc_activate(Acc v, long long act) {
    switch (act) {
        case GC_ACT_RELU: return v < (Acc)0 ? (Acc)0 : v;
        case GC_ACT_LEAKY: return v < (Acc)0 ? v * (Acc)0.01f : v;   // float32(0.01) as numpy
        case GC_ACT_TANH: return tanh(v);
        case GC_ACT_SIGMOID: {                  // e = exp(-|v|) <= 1: no cancellation, no overflow
            const Acc e = exp(-fabs(v));
            const Acc r = (Acc)1 / ((Acc)1 + e);
            return v < (Acc)0 ? e * r : r;
        }
        default: return v;
    }
}

// Bias, activation, epilogue, store of one output (m's row, output channel oc).
template <typename Tout, typename Acc>
__device__ __forceinline__ void gc_conv_store(Tout* __restrict__ y, long long y_off, long long oc, Acc v,
                                              const GcConvGeometry& g, const Acc* __restrict__ bias,
                                              const GcEpilogue<Acc>& ep) {
    if (g.has_bias) v += __ldg(bias + oc);
    y[y_off + oc * g.y_stride[1]] = gc_finish<Tout, Acc>(gc_activate<Acc>(v, g.activation), ep);
}

// What a block needs of one GEMM row m: where its image starts in x, where its output goes
// in y (without the channel), and the top-left input position of its window.
struct GcConvRow {
    long long x_off;      // -1: m is past M (reads zeros, stores nothing)
    long long y_off;
    int iy0, ix0;
};

// Fill rows[0, BM) for the block's rows m0.. (all NT threads; the caller synchronises).
template <int BM, int NT>
__device__ __forceinline__ void gc_conv_rows(GcConvRow* rows, const GcConvGeometry& g, long long m0) {
    const long long hw = g.ho * g.wo;
    for (int i = threadIdx.x; i < BM; i += NT) {
        const long long m = m0 + i;
        GcConvRow r;
        if (m < g.m_total) {
            const long long n = m / hw, p = m - n * hw;
            const long long oy = p / g.wo, ox = p - oy * g.wo;
            r.x_off = n * g.x_stride[0];
            r.y_off = n * g.y_stride[0] + oy * g.y_stride[2] + ox * g.y_stride[3];
            r.iy0 = (int)(oy * g.step[0] - g.pad[0]);
            r.ix0 = (int)(ox * g.step[1] - g.pad[1]);
        } else {
            r.x_off = -1; r.y_off = 0; r.iy0 = 0; r.ix0 = 0;
        }
        rows[i] = r;
    }
}

// ---- asynchronous copies (cp.async, sm_80+) ------------------------------------------------
// One element global -> shared, or zeros where `valid` is false (cp.async's src-size 0).
// Elements of 4 or 8 bytes go asynchronously on sm_80 and newer; elsewhere, and on the host
// emulator, it is a plain load and store, which the pipeline's barriers order the same way.
template <typename T>
__device__ __forceinline__ void gc_copy_async(T* smem, const T* gmem, bool valid) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    if constexpr (sizeof(T) == 4 || sizeof(T) == 8) {
        const unsigned s = (unsigned)__cvta_generic_to_shared(smem);
        asm volatile("cp.async.ca.shared.global [%0], [%1], %2, %3;\n"
                     :: "r"(s), "l"(gmem), "n"((int)sizeof(T)), "r"(valid ? (int)sizeof(T) : 0));
        return;
    }
#endif
    *smem = valid ? gc_load(gmem) : T{};
}

__device__ __forceinline__ void gc_copy_commit() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("cp.async.commit_group;\n" ::);
#endif
}

// Wait until at most N committed groups of this thread are still in flight.
template <int N>
__device__ __forceinline__ void gc_copy_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("cp.async.wait_group %0;\n" :: "n"(N));
#endif
}

// ---- element conversions into shared memory --------------------------------------------------
// The tile element type Ts is the input type itself (float / double: copied asynchronously),
// or the accumulator / tensor-core operand type the input is converted to on the way.
template <typename Ts, typename Tin>
__device__ __forceinline__ Ts gc_to_tile(Tin v) { return gc_to_acc<Ts>(v); }

// Stage one element into the tile: asynchronously when no conversion is needed.
template <typename Ts, typename Tin>
__device__ __forceinline__ void gc_stage(Ts* dst, const Tin* src, bool valid) {
    if constexpr (sizeof(Ts) == sizeof(Tin) && (sizeof(Ts) == 4 || sizeof(Ts) == 8) &&
                  GcIsInt<Tin>::value == GcIsInt<Ts>::value) {
        gc_copy_async(reinterpret_cast<Tin*>(dst), src, valid);
    } else {
        *dst = valid ? gc_to_tile<Ts>(gc_load(src)) : Ts{};
    }
}

// One K index decoded: the tap's input offsets (ky * dil_y, kx * dil_x), the tap and the
// channel within the group.
struct GcKTap { int dy, dx, tap, c; };

// Flat K of up to GC_K_TABLE entries is decoded once per block into a shared table, so the
// gather of a small-C layer (27 entries for RGB 3x3) costs no divisions per element.
#ifndef GC_K_TABLE
#define GC_K_TABLE 256
#endif

__device__ __forceinline__ GcKTap gc_k_decode(int tap, int c, const GcConvGeometry& g) {
    const int kw = (int)g.kw, ky = tap / kw;
    return GcKTap{ky * (int)g.dil[0], (tap - ky * kw) * (int)g.dil[1], tap, c};
}

// K step `s` of BK elements (see the header), decoded once per step: for a chunked K, the
// step's tap and first channel; for a flat K, its first element. 32-bit: the host refuses
// banks whose K (taps x channels per group) reaches 2**31.
struct GcKStep { GcKTap base; int k0; };

template <int BK, bool FLAT>
__device__ __forceinline__ GcKStep gc_k_step(int s, const GcConvGeometry& g, int cchunks) {
    if (FLAT) return GcKStep{GcKTap{0, 0, 0, 0}, s * BK};
    const int tap = s / cchunks;                           // one division per step, not per element
    return GcKStep{gc_k_decode(tap, (s - tap * cchunks) * BK, g), 0};
}

// Element kk of a K step, and whether it exists; `table` holds the flat K decoded (nullptr:
// decode here, one 32-bit division).
template <int BK, bool FLAT>
__device__ __forceinline__ bool gc_k_tap(const GcKStep& st, int kk, const GcConvGeometry& g, const GcKTap* table,
                                         GcKTap& e) {
    if (FLAT) {
        const int k = st.k0 + kk, cg = (int)g.cg;
        if (k >= (int)(g.kh * g.kw) * cg) return false;
        if (table) { e = table[k]; return true; }
        const int tap = k / cg;
        e = gc_k_decode(tap, k - tap * cg, g);
        return true;
    }
    e = st.base;
    e.c += kk;
    return e.c < g.cg;
}

// Number of K steps of BK for a group.
template <int BK, bool FLAT>
__device__ __forceinline__ int gc_k_steps(const GcConvGeometry& g, int& cchunks) {
    cchunks = (int)((g.cg + BK - 1) / BK);
    const int taps = (int)(g.kh * g.kw);
    return FLAT ? (taps * (int)g.cg + BK - 1) / BK : taps * cchunks;
}

// Load K step `s` of group `grp` into the tiles: sa[BK][LDA] (A, element (k, m) at
// sa[k][m]) for the block's rows, and sb[BK][LDB] (B, element (k, oc) at sb[k][oc]) for
// output channels n0 .. n0 + BN of the group. Zeros stand for the constant border, rows past
// M, channels past cg and output channels past og, so the sums need no predicates.
// Thread maps: consecutive threads take consecutive m for channels-first x (pixels are
// contiguous there) and consecutive channels for channels-last x.
template <int BM, int BN, int BK, int LDA, int LDB, int NT, bool CL, bool FLAT, int BOUNDARY,
          typename Ts, typename Tin, typename Acc>
__device__ __forceinline__ void gc_load_k_step(Ts (*sa)[LDA], Ts (*sb)[LDB], const Tin* __restrict__ x,
                                               const Acc* __restrict__ w, const GcConvGeometry& g,
                                               const GcConvRow* rows, const GcKTap* table, long long grp,
                                               long long n0, int s, int cchunks) {
    const int t = threadIdx.x;
    const int h = (int)g.h, wd = (int)g.w;
    const long long c_base = grp * g.cg;
    const GcKStep st = gc_k_step<BK, FLAT>(s, g, cchunks);
    for (int e = t; e < BK * BM; e += NT) {
        const int kk = CL ? e % BK : e / BM;
        const int mm = CL ? e / BK : e % BM;
        GcKTap k;
        bool valid = gc_k_tap<BK, FLAT>(st, kk, g, table, k);
        const GcConvRow r = rows[mm];
        const int iy = gc_remap<BOUNDARY, int>(r.iy0 + k.dy, h);
        const int ix = gc_remap<BOUNDARY, int>(r.ix0 + k.dx, wd);
        valid = valid && r.x_off >= 0 && iy >= 0 && ix >= 0;
        const Tin* src = valid ? x + r.x_off + (c_base + k.c) * g.x_stride[1] + iy * g.x_stride[2] + ix * g.x_stride[3]
                               : x;
        gc_stage<Ts>(&sa[kk][mm], src, valid);
    }
    for (int e = t; e < BK * BN; e += NT) {
        const int kk = e / BN, nn = e % BN;
        GcKTap k;
        const bool valid = gc_k_tap<BK, FLAT>(st, kk, g, table, k) && n0 + nn < g.og;
        const Acc* src = valid ? w + (grp * g.og + n0 + nn) * g.w_stride[0] + k.c * g.w_stride[1] + k.tap * g.w_stride[2]
                               : w;
        gc_stage<Ts>(&sb[kk][nn], src, valid);
    }
}

// The static shared memory of a GEMM kernel: STAGES copies of the A and B tiles (rows
// 16-byte aligned), the block's row table and, for a flat K, its decoded table.
template <typename Ts, int STAGES, int BK, int BM, int LDA, int LDB, bool FLAT>
struct GcGemmShared {
    __align__(16) Ts a[STAGES][BK][LDA];
    __align__(16) Ts b[STAGES][BK][LDB];
    GcConvRow rows[BM];
    GcKTap ktab[FLAT ? GC_K_TABLE : 1];
};

// The K-step pipeline of the GEMM kernels: STAGES buffers of A and B tiles, each step's tiles
// gathered STAGES - 1 steps before they are used. Every thread of the block runs:
//     __shared__ GcGemmShared<...> sm;
//     GcKPipeline<...> pipe(sm, x, w, g);                // row and K tables, K steps
//     for (grp = blockIdx.z; grp < g.groups; grp += gridDim.z) {
//         __syncthreads();  pipe.start(grp);
//         for (s = 0; s < pipe.steps; ++s) { pipe.ready(s); ...use buffers s % STAGES... }
//         pipe.finish();    ...store outputs of rows[], channels pipe.n0 + ...
//     }
template <int BM, int BN, int BK, int LDA, int LDB, int NT, int STAGES, bool CL, bool FLAT, int BOUNDARY,
          typename Ts, typename Tin, typename Acc>
struct GcKPipeline {
    Ts (*sa)[BK][LDA];
    Ts (*sb)[BK][LDB];
    const GcConvRow* rows;
    const GcKTap* table;      // the flat K decoded, or nullptr
    const Tin* __restrict__ x;
    const Acc* __restrict__ w;
    const GcConvGeometry& g;
    long long n0;             // the block's first output channel within a group
    int steps;                // K steps per group
    long long grp = 0;
    int cchunks;

    // Fills the row table and, for a flat K that fits, the K table (GC_K_TABLE entries):
    // both are visible after the next barrier.
    __device__ GcKPipeline(GcGemmShared<Ts, STAGES, BK, BM, LDA, LDB, FLAT>& sm, const Tin* x_, const Acc* w_,
                           const GcConvGeometry& g_)
        : sa(sm.a), sb(sm.b), rows(sm.rows), table(nullptr), x(x_), w(w_), g(g_), n0((long long)blockIdx.y * BN) {
        steps = gc_k_steps<BK, FLAT>(g, cchunks);
        gc_conv_rows<BM, NT>(sm.rows, g, (long long)blockIdx.x * BM);
        const int k_total = (int)(g.kh * g.kw * g.cg);
        if (FLAT && k_total <= GC_K_TABLE) {
            for (int k = threadIdx.x; k < k_total; k += NT) sm.ktab[k] = gc_k_decode(k / (int)g.cg, k % (int)g.cg, g);
            table = sm.ktab;
        }
    }

    __device__ void load(int s) {
        const int b = s % STAGES;
        gc_load_k_step<BM, BN, BK, LDA, LDB, NT, CL, FLAT, BOUNDARY>(sa[b], sb[b], x, w, g, rows, table, grp, n0, s,
                                                                    cchunks);
    }

    // Gather group grp's first STAGES - 1 steps (one commit group each, empty past the last).
    __device__ void start(long long group) {
        grp = group;
        for (int s = 0; s < STAGES - 1; ++s) {
            if (s < steps) load(s);
            gc_copy_commit();
        }
    }

    // Make step s's tiles visible to the block and start gathering step s + STAGES - 1 into
    // the buffer step s - 1 used (every thread has passed the barrier, so it is consumed).
    __device__ void ready(int s) {
        gc_copy_wait<STAGES - 2>();
        __syncthreads();
        if (s + STAGES - 1 < steps) load(s + STAGES - 1);
        gc_copy_commit();
    }

    // No copy may still target the tiles once the block moves on.
    __device__ void finish() { gc_copy_wait<0>(); }
};
