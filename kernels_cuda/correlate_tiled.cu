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
// Assumes:     the host (gpuconv/backends/cuda/correlate_plan.py) checked the geometry: step = 1,
//              dilation = 1 in y and FOLD in x, ksize = (1, KH, KW), per-image offsets fit
//              in Idx, output never aliases input.
#include "gpuconv_tile.cuh"

template <typename Tin, typename Tout, typename Acc, int KH, int KW, int FOLD, int BOUNDARY, int RY,
          typename Idx>
__global__ void __launch_bounds__(GC_TILED_BLOCK_X * GC_TILED_BLOCK_Y)
correlate_tiled(const Tin* __restrict__ x, Tout* __restrict__ y, const GcGeometry g,
                const GcTaps<Acc, KH * KW> taps, const GcEpilogue<Acc> ep, const Acc cval) {
    using S = GcTileShape<Tin, Acc, KH, KW, FOLD, RY>;
    constexpr int RX = S::RX, TILE_W = S::TILE_W, TILE_H = S::TILE_H, VA = S::VA;
    static_assert(S::ROWS * S::PITCH * sizeof(Acc) <= 48 * 1024, "tile exceeds static shared memory");

    __shared__ __align__(16) Acc s_tile[S::ROWS][S::PITCH];

    constexpr int SPAN_V = S::SPAN_V;
    const int tx = threadIdx.x, ty = threadIdx.y;
    for (GcTileCursor<S, Idx> tile(g); tile.next(g);) {
        const Idx oy0 = tile.oy0, ox0 = tile.ox0;
        gc_load_tile<S, BOUNDARY, FOLD>(s_tile, x + tile.in_off, g, oy0 - (Idx)g.pad_lo[1], ox0 - (Idx)g.pad_lo[2], cval);
        // ---- RY x RX outputs per thread: each input row segment is read once ----------
        Acc acc[RY][RX];
#pragma unroll
        for (int i = 0; i < RY; ++i)
#pragma unroll
            for (int j = 0; j < RX; ++j) acc[i][j] = (Acc)0;

#pragma unroll
        for (int r = 0; r < RY + KH - 1; ++r) {       // input rows this thread touches
            Acc v[SPAN_V * VA];
            gc_read_row(&s_tile[ty * RY + r][tx * RX], v);
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
        gc_store_block(y + tile.out_off, acc, g, oy0 + ty * RY, ox0 + tx * RX, ep);
    }
}
