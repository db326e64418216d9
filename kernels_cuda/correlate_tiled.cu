// correlate_tiled.cu — the fast path of gpuconv.correlate: a 2-D (or 1-D) kernel of
// compile-time size KH x KW at unit stride and unit dilation, over a batch of images.
//
// Computes, for every image b of the batch and every output pixel (oy, ox):
//     y[b, oy, ox] = epilogue( sum_{ky, kx} w[ky, kx] * xp[b, oy + ky, ox + kx * FOLD] )
// where xp is x padded by numpy.pad(mode=BOUNDARY) with pad_lo leading samples (x in
// elements). FOLD > 1 reads a channels-last image as rows of W*FOLD elements: the taps step
// over whole pixels and every channel is filtered on its own, with no transpose.
//
// Tile:        TILE_H x TILE_W outputs per block, TILE_W = BLOCK_X * RX, TILE_H = BLOCK_Y * RY
// Threads:     BLOCK_X x BLOCK_Y = 32 x 8 = 256 per block
// Per thread:  RY rows x RX consecutive columns of outputs, accumulated in registers; each
//              input row segment is read from shared memory once (16-byte reads) and used
//              for every tap and output row it feeds
// Shared:      one input tile of (TILE_H + KH - 1) x PITCH accumulator values, the halo
//              loaded once; PITCH is TILE_W + (KW - 1) * FOLD rounded up for 16-byte reads.
//              Static, at most 48 KB (the host picks RY so that it fits).
// Weights:     passed by value (GcTaps), so every tap is a constant-bank operand of its FMA.
// Loads:       interior tiles load without boundary arithmetic, 16 bytes at a time when the
//              input rows are 16-byte aligned with unit x stride; only tiles touching the
//              border remap indices (gc_remap) or read the fill value.
// Batch:       blockIdx.z walks the batch (grid-stride), blockIdx.y the tile rows
//              (grid-stride), so any batch size and image height fit the grid limits.
// Assumes:     the host (gpuconv/backends/cuda_params.py) checked the geometry: step = 1,
//              dilation = 1 in y and FOLD in x, ksize = (1, KH, KW), per-image offsets fit
//              in Idx, output never aliases input.
#include "gpuconv_common.cuh"

#ifndef GC_TILED_BLOCK_X
#define GC_TILED_BLOCK_X 32
#endif
#ifndef GC_TILED_BLOCK_Y
#define GC_TILED_BLOCK_Y 8
#endif
#ifndef GC_TILED_RX
#define GC_TILED_RX 4
#endif

template <typename Acc, int N>
struct GcTaps { Acc w[N]; };

template <typename Tin, typename Tout, typename Acc, int KH, int KW, int FOLD, int BOUNDARY, int RY,
          typename Idx>
__global__ void __launch_bounds__(GC_TILED_BLOCK_X * GC_TILED_BLOCK_Y)
correlate_tiled(const Tin* __restrict__ x, Tout* __restrict__ y, const GcGeometry g,
                const GcTaps<Acc, KH * KW> taps, const GcEpilogue<Acc> ep, const Acc cval) {
    constexpr int BX = GC_TILED_BLOCK_X, BY = GC_TILED_BLOCK_Y, RX = GC_TILED_RX;
    constexpr int TILE_W = BX * RX, TILE_H = BY * RY;
    constexpr int ROWS = TILE_H + KH - 1;                 // input rows of one tile
    constexpr int COLS = TILE_W + (KW - 1) * FOLD;        // input columns of one tile
    constexpr int SPAN = RX + (KW - 1) * FOLD;            // columns one thread reads per row
    constexpr int VA = 16 / (int)sizeof(Acc);             // accumulators per 16-byte read
    constexpr int SPAN_V = (SPAN + VA - 1) / VA;          // 16-byte reads per row segment
    constexpr int PITCH = (TILE_W - RX) + SPAN_V * VA;    // >= COLS, a multiple of VA
    constexpr int VIN = 16 / (int)sizeof(Tin);            // input elements per 16-byte load
    static_assert(RX % VA == 0, "a thread's first column must start a 16-byte word");
    static_assert(ROWS * PITCH * sizeof(Acc) <= 48 * 1024, "tile exceeds static shared memory");

    __shared__ __align__(16) Acc s_tile[ROWS][PITCH];

    const int tx = threadIdx.x, ty = threadIdx.y;
    const int tid = ty * BX + tx;
    const Idx n_y = g.in_shape[1], n_x = g.in_shape[2];
    const Idx sy = g.in_stride[1], sx = g.in_stride[2];
    const long long tiles_y = (g.out_shape[1] + TILE_H - 1) / TILE_H;
    const Idx ox0 = (Idx)blockIdx.x * TILE_W;
    const Idx out_h = g.out_shape[1], out_w = g.out_shape[2];

    for (long long b = blockIdx.z; b < g.n_batch; b += gridDim.z) {
        long long in_off, out_off;
        gc_batch_offsets(b, g, in_off, out_off);
        const Tin* xb = x + in_off;
        Tout* yb = y + out_off;
        for (long long tile_y = blockIdx.y; tile_y < tiles_y; tile_y += gridDim.y) {
            const Idx oy0 = (Idx)tile_y * TILE_H;
            const Idx iy0 = oy0 - (Idx)g.pad_lo[1];       // first input row of the tile
            const Idx ix0 = ox0 - (Idx)g.pad_lo[2];       // first input column of the tile

            // ---- load the input tile with its halo ---------------------------------------
            __syncthreads();                              // the previous tile is consumed
            const bool interior = iy0 >= 0 && iy0 + ROWS <= n_y && ix0 >= 0 && ix0 + COLS <= n_x;
            const Idx ixa = ix0 - (((ix0 % VIN) + VIN) % VIN);   // aligned down to VIN
            const int n_vec = (int)((ix0 + COLS - ixa + VIN - 1) / VIN);   // 16-byte words per row
            if (interior && g.vec_ok && ixa + (Idx)n_vec * VIN <= n_x) {
                // fast path: aligned 16-byte loads, no boundary arithmetic
                for (int i = tid; i < ROWS * n_vec; i += BX * BY) {
                    const int r = i / n_vec, v = i - r * n_vec;
                    const Idx col = ixa + (Idx)v * VIN;
                    union { uint4 u; Tin e[VIN]; } pack;
                    pack.u = __ldg(reinterpret_cast<const uint4*>(xb + (iy0 + r) * sy + col));
#pragma unroll
                    for (int j = 0; j < VIN; ++j) {
                        const int c = (int)(col - ix0) + j;
                        if (c >= 0 && c < COLS) s_tile[r][c] = gc_to_acc<Acc>(pack.e[j]);
                    }
                }
            } else if (interior) {
                for (int i = tid; i < ROWS * COLS; i += BX * BY) {
                    const int r = i / COLS, c = i - r * COLS;
                    s_tile[r][c] = gc_to_acc<Acc>(gc_load(xb + (iy0 + r) * sy + (ix0 + c) * sx));
                }
            } else {
                // border tile: remap each halo index the way numpy.pad would
                for (int i = tid; i < ROWS * COLS; i += BX * BY) {
                    const int r = i / COLS, c = i - r * COLS;
                    const Idx sr = gc_remap<BOUNDARY, Idx>(iy0 + r, n_y);
                    const Idx sc = gc_remap_folded<BOUNDARY, Idx>(ix0 + c, n_x, FOLD);
                    s_tile[r][c] = (sr < 0 || sc < 0) ? cval : gc_to_acc<Acc>(gc_load(xb + sr * sy + sc * sx));
                }
            }
            __syncthreads();

            // ---- compute RY x RX outputs per thread ------------------------------------------
            Acc acc[RY][RX];
#pragma unroll
            for (int i = 0; i < RY; ++i)
#pragma unroll
                for (int j = 0; j < RX; ++j) acc[i][j] = (Acc)0;

#pragma unroll
            for (int r = 0; r < RY + KH - 1; ++r) {       // input rows this thread touches
                Acc v[SPAN_V * VA];
                const Acc* row = &s_tile[ty * RY + r][tx * RX];
#pragma unroll
                for (int q = 0; q < SPAN_V; ++q) {        // 16-byte shared-memory reads
                    if constexpr (VA == 4) {
                        const float4 f = reinterpret_cast<const float4*>(row)[q];
                        v[q * 4 + 0] = f.x; v[q * 4 + 1] = f.y; v[q * 4 + 2] = f.z; v[q * 4 + 3] = f.w;
                    } else {
                        const double2 d = reinterpret_cast<const double2*>(row)[q];
                        v[q * 2 + 0] = d.x; v[q * 2 + 1] = d.y;
                    }
                }
#pragma unroll
                for (int i = 0; i < RY; ++i) {            // output rows fed by input row r
                    const int ky = r - i;
                    if (ky < 0 || ky >= KH) continue;     // resolved at compile time
#pragma unroll
                    for (int kx = 0; kx < KW; ++kx)
#pragma unroll
                        for (int j = 0; j < RX; ++j)
                            acc[i][j] = fma(taps.w[ky * KW + kx], v[j + kx * FOLD], acc[i][j]);
                }
            }

            // ---- epilogue and store -------------------------------------------------------------
            const Idx oys = g.out_stride[1], oxs = g.out_stride[2];
#pragma unroll
            for (int i = 0; i < RY; ++i) {
                const Idx oy = oy0 + ty * RY + i;
                if (oy >= out_h) break;
#pragma unroll
                for (int j = 0; j < RX; ++j) {
                    const Idx ox = ox0 + tx * RX + j;
                    if (ox < out_w) yb[oy * oys + ox * oxs] = gc_finish<Tout, Acc>(acc[i][j], ep);
                }
            }
        }
    }
}
