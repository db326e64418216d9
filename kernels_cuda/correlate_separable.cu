// correlate_separable.cu — the fused separable path of gpuconv.correlate: a KH x KW kernel
// given as a sum of RANK outer products col[t] (x) row[t], at unit stride and dilation.
//
// Computes, for every image b and output pixel (oy, ox):
//     y[b, oy, ox] = epilogue( sum_t sum_ky col[t][ky] *
//                              sum_kx row[t][kx] * xp[b, oy + ky, ox + kx * FOLD] )
// with xp = numpy.pad(x, mode=BOUNDARY) as in correlate_tiled.cu (FOLD > 1: a channels-last
// image read as rows of W*FOLD elements, every channel filtered on its own).
//
// Tile:        TILE_H x TILE_W = 8*RY x 128 outputs per block (gpuconv_tile.cuh).
// Threads:     32 x 8 = 256 per block.
// Per thread:  row pass: RX = 4 intermediate values of every 8th tile row (the halo rows
//              included); column pass: RY x 4 outputs accumulated in registers over the
//              RANK terms.
// Shared:      the input tile with its halo, (TILE_H + KH - 1) x PITCH values (loaded once
//              for all terms), and the row-pass result, (TILE_H + KH - 1) x TILE_W values:
//              the intermediate never touches device memory. Static, at most 48 KB (the
//              host picks RY so that both fit).
// Weights:     passed by value (GcSeparableTaps), constant-bank operands of the FMAs.
// Work:        (KW * (TILE_H + KH - 1) / TILE_H + KH) FMAs per output and term, against
//              KH * KW for correlate_tiled.
// Assumes:     the host (gpuconv/backends/cuda/correlate_plan.py) checked the geometry: step = 1,
//              dilation = 1 in y and FOLD in x, ksize = (1, KH, KW), per-image offsets fit
//              in Idx, output never aliases input.
#include "gpuconv_tile.cuh"

template <typename Tin, typename Tout, typename Acc, int KH, int KW, int FOLD, int BOUNDARY, int RY,
          int RANK, typename Idx>
__global__ void __launch_bounds__(GC_TILED_BLOCK_X * GC_TILED_BLOCK_Y)
correlate_separable(const Tin* __restrict__ x, Tout* __restrict__ y, const GcGeometry g,
                    const GcSeparableTaps<Acc, RANK, KH, KW> taps, const GcEpilogue<Acc> ep,
                    const Acc cval) {
    using S = GcTileShape<Tin, Acc, KH, KW, FOLD, RY>;
    constexpr int RX = S::RX, TILE_W = S::TILE_W, TILE_H = S::TILE_H, ROWS = S::ROWS, VA = S::VA;
    static_assert((ROWS * S::PITCH + ROWS * TILE_W) * sizeof(Acc) <= 48 * 1024,
                  "tile and row-pass result exceed static shared memory");

    __shared__ __align__(16) Acc s_tile[ROWS][S::PITCH];
    __shared__ __align__(16) Acc s_mid[ROWS][TILE_W];

    constexpr int SPAN_V = S::SPAN_V, BY = S::BY;
    const int tx = threadIdx.x, ty = threadIdx.y;
    for (GcTileCursor<S, Idx> tile(g); tile.next(g);) {
        const Idx oy0 = tile.oy0, ox0 = tile.ox0;
        gc_load_tile<S, BOUNDARY, FOLD>(s_tile, x + tile.in_off, g, oy0 - (Idx)g.pad_lo[1], ox0 - (Idx)g.pad_lo[2], cval);
        Acc acc[RY][RX];
#pragma unroll
        for (int i = 0; i < RY; ++i)
#pragma unroll
            for (int j = 0; j < RX; ++j) acc[i][j] = (Acc)0;

#pragma unroll
        for (int t = 0; t < RANK; ++t) {
            if (t > 0) __syncthreads();               // the previous term's s_mid is read
            // ---- row pass: every tile row, halo rows included ---------------------------
            for (int r = ty; r < ROWS; r += BY) {
                Acc v[SPAN_V * VA];
                gc_read_row(&s_tile[r][tx * RX], v);
                Acc m[RX];
#pragma unroll
                for (int j = 0; j < RX; ++j) m[j] = (Acc)0;
#pragma unroll
                for (int kx = 0; kx < KW; ++kx)
#pragma unroll
                    for (int j = 0; j < RX; ++j) m[j] = fma(taps.row[t][kx], v[j + kx * FOLD], m[j]);
                gc_write_row(&s_mid[r][tx * RX], m);
            }
            __syncthreads();
            // ---- column pass: RY x RX outputs from the row-pass result ------------------
#pragma unroll
            for (int r = 0; r < RY + KH - 1; ++r) {
                Acc u[RX];
                gc_read_row(&s_mid[ty * RY + r][tx * RX], u);
#pragma unroll
                for (int i = 0; i < RY; ++i) {
                    const int ky = r - i;
                    if (ky < 0 || ky >= KH) continue; // resolved at compile time
#pragma unroll
                    for (int j = 0; j < RX; ++j) acc[i][j] = fma(taps.col[t][ky], u[j], acc[i][j]);
                }
            }
        }
        gc_store_block(y + tile.out_off, acc, g, oy0 + ty * RY, ox0 + tx * RX, ep);
    }
}
