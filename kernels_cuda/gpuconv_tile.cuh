// gpuconv_tile.cuh — the shared-memory input tile and the register-blocked store used by
// the 2-D tiled kernels (correlate_tiled.cu, correlate_separable.cu).
//
// Both kernels run BLOCK_X x BLOCK_Y = 32 x 8 threads; each thread owns RY rows x RX = 4
// consecutive columns of outputs. A block's tile is TILE_H = 8*RY rows by TILE_W = 128
// columns of outputs, and it reads (TILE_H + KH - 1) input rows of TILE_W + (KW-1)*FOLD
// columns (x in elements; FOLD channels interleaved along x).
#pragma once
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

// Compile-time shape of one tile (see the header comment).
template <typename Tin, typename Acc, int KH, int KW, int FOLD, int RY>
struct GcTileShape {
    static constexpr int BX = GC_TILED_BLOCK_X, BY = GC_TILED_BLOCK_Y, RX = GC_TILED_RX;
    static constexpr int THREADS = BX * BY;
    static constexpr int TILE_W = BX * RX, TILE_H = BY * RY;
    static constexpr int ROWS = TILE_H + KH - 1;                 // input rows of one tile
    static constexpr int COLS = TILE_W + (KW - 1) * FOLD;        // input columns of one tile
    static constexpr int SPAN = RX + (KW - 1) * FOLD;            // columns one thread reads per row
    static constexpr int VA = 16 / (int)sizeof(Acc);             // accumulators per 16-byte read
    static constexpr int SPAN_V = (SPAN + VA - 1) / VA;          // 16-byte reads per row segment
    static constexpr int PITCH = (TILE_W - RX) + SPAN_V * VA;    // >= COLS, a multiple of VA
    static constexpr int VIN = 16 / (int)sizeof(Tin);            // input elements per 16-byte load
    static_assert(RX % VA == 0, "a thread's first column must start a 16-byte word");
};

// Fill s_tile[0..ROWS)[0..COLS) with the padded input rows iy0.. and columns ix0.. of one
// image xb. Interior tiles skip all boundary arithmetic (16-byte loads when the rows are
// aligned and x has unit stride); border tiles remap every index the way numpy.pad would.
// All threads of the block call it; it synchronises before (the previous tile is consumed)
// and after (the tile is complete).
template <typename S, int BOUNDARY, int FOLD, typename Tin, typename Acc, typename Idx>
__device__ __forceinline__ void gc_load_tile(Acc (*s_tile)[S::PITCH], const Tin* __restrict__ xb,
                                             const GcGeometry& g, Idx iy0, Idx ix0, Acc cval) {
    constexpr int ROWS = S::ROWS, COLS = S::COLS, VIN = S::VIN, NT = S::THREADS;
    const int tid = threadIdx.y * S::BX + threadIdx.x;
    __syncthreads();
    const Idx n_y = g.in_shape[1], n_x = g.in_shape[2];
    const Idx sy = g.in_stride[1], sx = g.in_stride[2];
    const bool interior = iy0 >= 0 && iy0 + ROWS <= n_y && ix0 >= 0 && ix0 + COLS <= n_x;
    const Idx ixa = ix0 - (((ix0 % VIN) + VIN) % VIN);          // aligned down to VIN
    const int n_vec = (int)((ix0 + COLS - ixa + VIN - 1) / VIN);  // 16-byte words per row
    if (interior && g.vec_ok && ixa + (Idx)n_vec * VIN <= n_x) {
        for (int i = tid; i < ROWS * n_vec; i += NT) {
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
        for (int i = tid; i < ROWS * COLS; i += NT) {
            const int r = i / COLS, c = i - r * COLS;
            s_tile[r][c] = gc_to_acc<Acc>(gc_load(xb + (iy0 + r) * sy + (ix0 + c) * sx));
        }
    } else {
        for (int i = tid; i < ROWS * COLS; i += NT) {
            const int r = i / COLS, c = i - r * COLS;
            const Idx sr = gc_remap<BOUNDARY, Idx>(iy0 + r, n_y);
            const Idx sc = gc_remap_folded<BOUNDARY, Idx>(ix0 + c, n_x, FOLD);
            s_tile[r][c] = (sr < 0 || sc < 0) ? cval : gc_to_acc<Acc>(gc_load(xb + sr * sy + sc * sx));
        }
    }
    __syncthreads();
}

// This block's tiles, in order: every image of the batch (grid-stride over blockIdx.z) and
// every tile row (grid-stride over blockIdx.y) at tile column blockIdx.x. Usage:
//     for (GcTileCursor<S, Idx> t(g); t.next(g);) { ... t.in_off, t.out_off, t.oy0, t.ox0 ... }
// Every thread of a block takes the same steps, so barriers inside the loop are safe.
template <typename S, typename Idx>
struct GcTileCursor {
    long long b, tile_y, tiles_y;
    long long in_off = 0, out_off = 0;   // element offsets of the image in x and y
    Idx oy0 = 0, ox0;                    // the tile's first output row and column

    __device__ explicit GcTileCursor(const GcGeometry& g)
        : b(blockIdx.z), tile_y((long long)blockIdx.y - gridDim.y),
          tiles_y((g.out_shape[1] + S::TILE_H - 1) / S::TILE_H), ox0((Idx)blockIdx.x * S::TILE_W) {}

    __device__ bool next(const GcGeometry& g) {
        tile_y += gridDim.y;
        for (; b < g.n_batch; b += gridDim.z, tile_y = blockIdx.y) {
            if (tile_y < tiles_y) {
                gc_batch_offsets(b, g, in_off, out_off);
                oy0 = (Idx)tile_y * S::TILE_H;
                return true;
            }
        }
        return false;
    }
};

// Read a shared-memory row into the registers v[0, M), 16 bytes at a time (M a multiple of
// 16 / sizeof(Acc); the sizes are deduced, so callers inside lambdas pass no template arguments).
template <typename Acc, int M>
__device__ __forceinline__ void gc_read_row(const Acc* row, Acc (&v)[M]) {
    constexpr int VA = 16 / (int)sizeof(Acc), N = M / VA;
#pragma unroll
    for (int q = 0; q < N; ++q) {
        if constexpr (VA == 4) {
            const float4 f = reinterpret_cast<const float4*>(row)[q];
            v[q * 4 + 0] = f.x; v[q * 4 + 1] = f.y; v[q * 4 + 2] = f.z; v[q * 4 + 3] = f.w;
        } else {
            const double2 d = reinterpret_cast<const double2*>(row)[q];
            v[q * 2 + 0] = d.x; v[q * 2 + 1] = d.y;
        }
    }
}

// Write the registers v[0, M) to a shared-memory row, 16 bytes at a time (as gc_read_row).
template <typename Acc, int M>
__device__ __forceinline__ void gc_write_row(Acc* row, const Acc (&v)[M]) {
    constexpr int VA = 16 / (int)sizeof(Acc), N = M / VA;
#pragma unroll
    for (int q = 0; q < N; ++q) {
        if constexpr (VA == 4) {
            reinterpret_cast<float4*>(row)[q] = make_float4(v[q * 4], v[q * 4 + 1], v[q * 4 + 2], v[q * 4 + 3]);
        } else {
            reinterpret_cast<double2*>(row)[q] = make_double2(v[q * 2], v[q * 2 + 1]);
        }
    }
}

// Epilogue and store of one thread's RY x RX outputs, the first at (oy, ox); rows and
// columns past the result's edge are skipped.
template <typename Tout, typename Acc, int RY, int RX, typename Idx>
__device__ __forceinline__ void gc_store_block(Tout* __restrict__ yb, const Acc (&acc)[RY][RX],
                                               const GcGeometry& g, Idx oy, Idx ox,
                                               const GcEpilogue<Acc>& ep) {
    const Idx out_h = g.out_shape[1], out_w = g.out_shape[2];
    const Idx oys = g.out_stride[1], oxs = g.out_stride[2];
#pragma unroll
    for (int i = 0; i < RY; ++i) {
        if (oy + i >= out_h) break;
#pragma unroll
        for (int j = 0; j < RX; ++j)
            if (ox + j < out_w) yb[(oy + i) * oys + (ox + j) * oxs] = gc_finish<Tout, Acc>(acc[i][j], ep);
    }
}
