// correlate_rows.cu — 1-D kernels along long rows: a few long signals, or kernels longer
// than correlate_tiled's compile-time taps (any length K, unit stride and dilation).
//
// Computes, for every image b, row r and output o:
//     y[b, r, o] = epilogue( sum_{j < K} w[j] * xp[b, r, o + j] )
// with xp = numpy.pad(x, mode=BOUNDARY) along the row (pad_lo leading samples).
//
// Tile:        TILE = 256 * RX = 2048 consecutive outputs of one row per block, grid-stride
//              over rows (grid x), tiles (grid y) and the batch (grid z). Rows vary fastest,
//              so the rows of a channels-last signal ((n, C) with taps C elements apart:
//              each channel is a row of stride C) are filtered by neighbouring blocks and
//              the sectors they share are read from DRAM once.
// Threads:     256 per block; RX = 8 consecutive outputs per thread, in registers.
// Taps:        read from device memory in chunks of KC = 512 into shared memory (every
//              thread reads the same tap: a broadcast); a chunk's input segment of
//              TILE + KC - 1 samples is staged in shared memory with the halo.
// Inner loop:  a sliding window in registers: per tap one new sample (one conflict-free
//              shared-memory load) and RX FMAs; the window advances RX taps per unrolled
//              step, so the shift costs no moves.
// Shared:      the segment stored transposed, sample e at [e % RX][e / RX] with a row
//              pitch of 4 (mod 32) words: a thread's window samples are 256 words apart
//              from its neighbours' (no bank conflicts), and the coalesced loads that fill
//              it are conflict-free too. The same array stages the outputs so that the
//              stores to device memory coalesce. (RX * PITCH + KC) values: 12.3 KB float,
//              24.6 KB double.
// Loads:       interior segments read without boundary arithmetic; border segments remap
//              each index like numpy.pad (gc_remap) or read the fill value.
// Assumes:     the host (gpuconv/backends/cuda/correlate_plan.py) checked the geometry: ksize =
//              (1, 1, K), step = 1, dilation = 1, fold = 1, per-image offsets fit in Idx,
//              output never aliases input.
#include "gpuconv_common.cuh"

#ifndef GC_ROWS_THREADS
#define GC_ROWS_THREADS 256
#endif

template <typename Tin, typename Tout, typename Acc, int BOUNDARY, typename Idx>
__global__ void __launch_bounds__(GC_ROWS_THREADS)
correlate_rows(const Tin* __restrict__ x, Tout* __restrict__ y, const GcGeometry g,
               const Acc* __restrict__ w, const GcEpilogue<Acc> ep, const Acc cval) {
    constexpr int NT = GC_ROWS_THREADS, RX = 8, TILE = NT * RX, KC = 512;
    constexpr int SEG = TILE + KC;                        // samples staged per chunk (>= TILE + KC - 1)
    constexpr int PITCH = SEG / RX + 4;                   // 324: 4 mod 32 words
    static_assert(KC % RX == 0 && (PITCH % 32) == 4, "transposed layout needs these");

    __shared__ Acc s_x[RX][PITCH];
    __shared__ Acc s_w[KC];

    const int t = threadIdx.x;
    const int K = (int)g.ksize[2];
    const Idx n_x = g.in_shape[2], sx = g.in_stride[2], sy = g.in_stride[1];
    const Idx out_w = g.out_shape[2], oys = g.out_stride[1], oxs = g.out_stride[2];
    const long long n_rows = g.out_shape[1];
    const long long tiles = (out_w + TILE - 1) / TILE;

    for (long long b = blockIdx.z; b < g.n_batch; b += gridDim.z) {
        long long in_off, out_off;
        gc_batch_offsets(b, g, in_off, out_off);
        for (long long row = blockIdx.x; row < n_rows; row += gridDim.x) {
            const Tin* xr = x + in_off + (Idx)row * sy;
            Tout* yr = y + out_off + (Idx)row * oys;
            for (long long tile = blockIdx.y; tile < tiles; tile += gridDim.y) {
                const Idx o0 = (Idx)tile * TILE;
                Acc acc[RX];
#pragma unroll
                for (int r = 0; r < RX; ++r) acc[r] = (Acc)0;

                for (int c0 = 0; c0 < K; c0 += KC) {
                    const int kc = min(KC, K - c0);
                    const int n_seg = TILE + kc - 1;      // samples this chunk reads
                    const Idx is = o0 - (Idx)g.pad_lo[2] + c0;
                    __syncthreads();                      // the previous chunk / tile is consumed
                    for (int j = t; j < kc; j += NT) s_w[j] = w[c0 + j];
                    if (is >= 0 && is + n_seg <= n_x) {   // interior: no boundary arithmetic
                        for (int e = t; e < n_seg; e += NT)
                            s_x[e % RX][e / RX] = gc_to_acc<Acc>(gc_load(xr + (is + e) * sx));
                    } else {
                        for (int e = t; e < n_seg; e += NT) {
                            const Idx src = gc_remap<BOUNDARY, Idx>(is + e, n_x);
                            s_x[e % RX][e / RX] = src < 0 ? cval : gc_to_acc<Acc>(gc_load(xr + src * sx));
                        }
                    }
                    __syncthreads();

                    // window: cur holds samples t*RX + j0 + [0, RX), nxt the RX after them
                    Acc cur[RX], nxt[RX];
#pragma unroll
                    for (int i = 0; i < RX; ++i) cur[i] = s_x[i][t];
                    for (int j0 = 0; j0 < kc; j0 += RX) {
                        const int left = kc - j0;         // taps left in this chunk (uniform)
#pragma unroll
                        for (int i = 0; i < RX; ++i) nxt[i] = s_x[i][t + j0 / RX + 1];
#pragma unroll
                        for (int jj = 0; jj < RX; ++jj) {
                            if (jj < left) {              // never multiply past the last tap
                                const Acc wj = s_w[j0 + jj];
#pragma unroll
                                for (int r = 0; r < RX; ++r)
                                    acc[r] = fma(wj, r + jj < RX ? cur[r + jj] : nxt[r + jj - RX], acc[r]);
                            }
                        }
#pragma unroll
                        for (int i = 0; i < RX; ++i) cur[i] = nxt[i];
                    }
                }

                // ---- stage through shared memory so the stores coalesce --------------------
                __syncthreads();
#pragma unroll
                for (int r = 0; r < RX; ++r) s_x[r][t] = acc[r];
                __syncthreads();
                for (int e = t; e < TILE; e += NT) {
                    const Idx o = o0 + e;
                    if (o < out_w) yr[o * oxs] = gc_finish<Tout, Acc>(s_x[e % RX][e / RX], ep);
                }
            }
        }
    }
}
