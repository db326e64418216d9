// gpuconv_common.cuh — pieces shared by every gpuconv kernel.
//
//   * element types: gc_half (IEEE binary16 carried as its bits, so no cuda_fp16.h is
//     needed under NVRTC) and the conversions to and from the accumulator type;
//   * boundary remapping: numpy.pad's five modes as index maps, also for pads wider than
//     the axis (gpuconv/boundary.py is the Python twin, tested against numpy.pad);
//   * the epilogue: clip, then round half to even and saturate for integer results;
//   * the by-value parameter blocks the host fills (gpuconv/backends/cuda/blocks.py
//     mirrors their layouts field by field, and a CI test compiles static_asserts of every
//     size and offset with NVRTC; keep the two in step).
//
// Conversions use inline PTX on the device; the #else branches are plain C++ with the same
// rounding, used when the sources are compiled for the host.
#pragma once

#ifndef GC_MAX_BATCH_DIMS
#define GC_MAX_BATCH_DIMS 3
#endif

// ---- boundary modes (numbering shared with cuda/blocks.py BOUNDARY_IDS) ------------------
enum GcBoundary { GC_CONSTANT = 0, GC_EDGE = 1, GC_REFLECT = 2, GC_SYMMETRIC = 3, GC_WRAP = 4 };

// ---- binary16 ---------------------------------------------------------------------------
struct gc_half { unsigned short bits; };

__device__ __forceinline__ float gc_half_to_float(gc_half h) {
#ifdef __CUDA_ARCH__
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h.bits));
    return f;
#else
    unsigned int sign = (unsigned int)(h.bits >> 15) << 31;
    int exp = (h.bits >> 10) & 0x1f;
    unsigned int man = h.bits & 0x3ff;
    unsigned int out;
    if (exp == 0x1f) {
        out = sign | 0x7f800000u | (man << 13);            // inf / NaN
    } else if (exp == 0) {
        if (man == 0) {
            out = sign;                                    // signed zero
        } else {                                           // subnormal: normalise
            int e = -1;
            do { man <<= 1; ++e; } while (!(man & 0x400));
            out = sign | (unsigned int)(127 - 15 - e) << 23 | ((man & 0x3ff) << 13);
        }
    } else {
        out = sign | (unsigned int)(exp - 15 + 127) << 23 | (man << 13);
    }
    float f;
    __builtin_memcpy(&f, &out, 4);
    return f;
#endif
}

#ifndef __CUDA_ARCH__
// Round a double to binary16, nearest-even, with subnormals, overflow to inf and NaN.
inline unsigned short gc_host_double_to_half_bits(double v) {
    unsigned long long u;
    __builtin_memcpy(&u, &v, 8);
    unsigned short sign = (unsigned short)((u >> 48) & 0x8000);
    if (v != v) return (unsigned short)(sign | 0x7e00);
    double a = v < 0 ? -v : v;
    if (a >= 65520.0) return (unsigned short)(sign | 0x7c00);  // rounds to inf
    // scale so the binary16 quantum becomes 1 (2^-24 below 2^-14, 2^(e-10) above), then
    // round to nearest even with the FPU's default mode
    int e;
    __builtin_frexp(a, &e);                                     // a = m * 2^e, m in [0.5, 1)
    int q = e - 11 < -24 ? -24 : e - 11;                        // quantum exponent
    double scaled = __builtin_ldexp(a, -q);
    double r = __builtin_nearbyint(scaled);
    double back = __builtin_ldexp(r, q);
    if (back == 0.0) return sign;
    int be;
    __builtin_frexp(back, &be);
    if (be - 1 < -14) {                                         // subnormal
        return (unsigned short)(sign | (unsigned short)__builtin_ldexp(back, 24));
    }
    int hexp = be - 1 + 15;
    unsigned int man = (unsigned int)(__builtin_ldexp(back, -(be - 1)) * 1024.0) - 1024u;
    return (unsigned short)(sign | (unsigned short)(hexp << 10) | (unsigned short)man);
}
#endif

__device__ __forceinline__ gc_half gc_float_to_half(float f) {
    gc_half h;
#ifdef __CUDA_ARCH__
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h.bits) : "f"(f));
#else
    h.bits = gc_host_double_to_half_bits((double)f);  // exact widening, one rounding
#endif
    return h;
}

__device__ __forceinline__ gc_half gc_double_to_half(double d) {
    gc_half h;
#ifdef __CUDA_ARCH__
    asm("cvt.rn.f16.f64 %0, %1;" : "=h"(h.bits) : "d"(d));
#else
    h.bits = gc_host_double_to_half_bits(d);
#endif
    return h;
}

// ---- loads: any input element type -> accumulator type -----------------------------------
template <typename Acc, typename T>
__device__ __forceinline__ Acc gc_to_acc(T v) { return (Acc)v; }
template <>
__device__ __forceinline__ float gc_to_acc<float, gc_half>(gc_half v) { return gc_half_to_float(v); }
template <>
__device__ __forceinline__ double gc_to_acc<double, gc_half>(gc_half v) { return (double)gc_half_to_float(v); }

// Read-only load through the non-coherent cache (__ldg), for every input element type.
template <typename T>
__device__ __forceinline__ T gc_load(const T* p) { return __ldg(p); }
template <>
__device__ __forceinline__ gc_half gc_load<gc_half>(const gc_half* p) {
    gc_half h;
    h.bits = __ldg(reinterpret_cast<const unsigned short*>(p));
    return h;
}

// ---- boundary remapping -------------------------------------------------------------------
// Source index in [0, n) of position i (which may lie outside) of a padded axis; -1 for the
// constant mode, whose outside positions read the fill value. The same closed forms as
// gpuconv/boundary.py: numpy.pad extends every mode periodically, so wide pads need no loop.
template <int BOUNDARY, typename Idx>
__device__ __forceinline__ Idx gc_remap(Idx i, Idx n) {
    if (i >= 0 && i < n) return i;
    if (BOUNDARY == GC_CONSTANT) return -1;
    if (BOUNDARY == GC_EDGE) return i < 0 ? 0 : n - 1;
    if (BOUNDARY == GC_WRAP) { Idx m = i % n; return m < 0 ? m + n : m; }
    if (BOUNDARY == GC_SYMMETRIC) {                       // c b a | a b c d | d c b
        Idx p = 2 * n; Idx m = i % p; if (m < 0) m += p;
        return m < n ? m : p - 1 - m;
    }
    // GC_REFLECT: d c b | a b c d | c b a
    if (n == 1) return 0;
    Idx p = 2 * n - 2; Idx m = i % p; if (m < 0) m += p;
    return m < n ? m : p - m;
}

// The same along an axis that interleaves `fold` channels per pixel (channels-last images
// seen as rows of W*C elements): the pixel index is remapped, the channel kept.
template <int BOUNDARY, typename Idx>
__device__ __forceinline__ Idx gc_remap_folded(Idx e, Idx n_elems, int fold) {
    if (e >= 0 && e < n_elems) return e;
    if (fold == 1) return gc_remap<BOUNDARY, Idx>(e, n_elems);
    Idx px = e >= 0 ? e / fold : -((-e + fold - 1) / fold);   // floor division
    Idx c = e - px * fold;
    Idx src = gc_remap<BOUNDARY, Idx>(px, n_elems / fold);
    return src < 0 ? (Idx)-1 : src * fold + c;
}

// ---- the epilogue -----------------------------------------------------------------------------
// clip (NaN passes through, as numpy.clip), then for integer results: round half to even,
// NaN -> 0, saturate: below ilo -> ilo, above ihi -> the type's maximum ([ilo, ihi] are the
// widest Acc values that convert exactly; the host computes them with
// gpuconv.dtypes.integer_bounds).
template <typename Acc>
struct GcEpilogue {
    Acc clip_lo, clip_hi;   // -inf / +inf when not clipping
    Acc int_lo, int_hi;     // unused for float results
};

template <typename Out> struct GcIsInt { static const bool value = true; };
template <> struct GcIsInt<float> { static const bool value = false; };
template <> struct GcIsInt<double> { static const bool value = false; };
template <> struct GcIsInt<gc_half> { static const bool value = false; };

template <typename Out, typename Acc>
__device__ __forceinline__ Out gc_cast_out(Acc v) { return (Out)v; }
template <>
__device__ __forceinline__ gc_half gc_cast_out<gc_half, float>(float v) { return gc_float_to_half(v); }
template <>
__device__ __forceinline__ gc_half gc_cast_out<gc_half, double>(double v) { return gc_double_to_half(v); }

// The largest value of an integer type (2**31 - 1 for int), which float may not hold exactly.
template <typename Out>
__device__ __forceinline__ Out gc_int_max() {
    return (Out)(Out(-1) > Out(0) ? ~0ull : (1ull << (8 * sizeof(Out) - 1)) - 1);
}

template <typename Out, typename Acc>
__device__ __forceinline__ Out gc_finish(Acc v, const GcEpilogue<Acc>& ep) {
    v = v < ep.clip_lo ? ep.clip_lo : v;                  // comparisons with NaN are false:
    v = v > ep.clip_hi ? ep.clip_hi : v;                  // NaN stays NaN, as in numpy.clip
    if constexpr (GcIsInt<Out>::value) {
        v = rint(v);                                      // half to even
        v = v != v ? (Acc)0 : v;
        // past the widest exactly-convertible value (+inf too): the type's true maximum,
        // which float32 cannot hold for 32/64-bit types (2147483520 would come out otherwise)
        if (v > ep.int_hi) return gc_int_max<Out>();
        v = v < ep.int_lo ? ep.int_lo : v;
    }
    return gc_cast_out<Out, Acc>(v);
}

// ---- taps passed by value (correlate_tiled, correlate_separable) ------------------------------
// The weights of the fast kernels travel in the launch's parameter block, so every FMA takes
// its tap from the constant bank.
template <typename Acc, int N>
struct GcTaps { Acc w[N]; };

template <typename Acc, int RANK, int KH, int KW>
struct GcSeparableTaps {
    Acc col[RANK][KH];   // taps along y of each term
    Acc row[RANK][KW];   // taps along x of each term
};

// ---- geometry ---------------------------------------------------------------------------------
// One correlation problem over up to three sliding axes (z, y, x; unused ones have length 1)
// and up to GC_MAX_BATCH_DIMS batch axes. Strides are in elements and may be negative. All
// fields are 64-bit (they live in the constant bank); kernels convert per-image values to
// their index type Idx (int unless an image spans 2**31 elements) and keep batch offsets
// 64-bit.
struct GcGeometry {
    long long in_batch_stride[GC_MAX_BATCH_DIMS];
    long long out_batch_stride[GC_MAX_BATCH_DIMS];
    long long batch_shape[GC_MAX_BATCH_DIMS];  // unused dims have length 1
    long long n_batch;                         // product of batch_shape
    long long in_shape[3];                     // z, y, x lengths of the input (x in elements)
    long long out_shape[3];                    // z, y, x lengths of the result
    long long in_stride[3];                    // element strides of the input along z, y, x
    long long out_stride[3];                   // element strides of the result
    long long pad_lo[3];                       // leading pad (elements along x)
    long long step[3];                         // sliding stride
    long long dilation[3];                     // tap spacing in elements (x: pixels * fold)
    long long ksize[3];                        // kernel lengths
    long long fold;                            // channels interleaved along x (1: none)
    long long vec_ok;                          // input rows 16-byte aligned, unit x stride
};

// Batch index -> element offsets of that image in the input and the result.
__device__ __forceinline__ void gc_batch_offsets(long long b, const GcGeometry& g,
                                                 long long& in_off, long long& out_off) {
    in_off = 0;
    out_off = 0;
#pragma unroll
    for (int d = GC_MAX_BATCH_DIMS - 1; d >= 0; --d) {
        long long n = g.batch_shape[d];
        long long i = b % n;
        b /= n;
        in_off += i * g.in_batch_stride[d];
        out_off += i * g.out_batch_stride[d];
    }
}
