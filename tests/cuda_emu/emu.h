// emu.h — runs gpuconv's CUDA kernels on the CPU, for tests on machines without a GPU.
//
// The kernel sources in kernels_cuda/ are compiled as plain C++ after this header. Each
// block runs its threads as cooperative fibers (ucontext) on one OS thread; __syncthreads()
// switches to the next fiber, and a block moves past a barrier only when all its threads
// reached it (a thread that ends while others wait is reported as a divergent barrier, the
// undefined behaviour a GPU would not report). Blocks run one after another, so `static`
// stands in for __shared__. This checks the kernels' index arithmetic, tiling, boundary
// handling and epilogues; it says nothing about speed, races between blocks or the
// memory model, which only the GPU runs (tests marked gpu) check.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <tuple>
#include <type_traits>
#include <ucontext.h>
#include <utility>
#include <vector>

#define __global__
#define __device__ inline
#define __host__
#define __forceinline__
#define __shared__ static
#define __constant__ static
#define __grid_constant__
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))

struct dim3 { unsigned x = 1, y = 1, z = 1; };
struct alignas(16) uint4 { unsigned x, y, z, w; };
struct alignas(16) float4 { float x, y, z, w; };
struct alignas(16) double2 { double x, y; };
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
inline double2 make_double2(double x, double y) { return {x, y}; }

inline dim3 threadIdx, blockIdx, blockDim, gridDim;

template <typename T> inline T __ldg(const T* p) { return *p; }
using std::exp;   // the float overloads, as CUDA's math functions have them
using std::fabs;
using std::fma;
using std::rint;
using std::tanh;
template <typename T> inline T min(T a, T b) { return a < b ? a : b; }
template <typename T> inline T max(T a, T b) { return a > b ? a : b; }

namespace gc_emu {

struct Fiber {
    ucontext_t ctx;
    bool done = false;
    bool at_barrier = false;
};

inline ucontext_t g_scheduler;
inline std::vector<Fiber> g_fibers;
inline std::vector<std::vector<char>> g_stacks;
inline int g_current = 0;
inline std::function<void()> g_body;
inline const char* g_error = nullptr;
constexpr size_t kStack = 256 * 1024;

inline void fiber_main() {
    g_body();
    g_fibers[g_current].done = true;
    swapcontext(&g_fibers[g_current].ctx, &g_scheduler);
}

inline void barrier() {
    g_fibers[g_current].at_barrier = true;
    swapcontext(&g_fibers[g_current].ctx, &g_scheduler);
}

// Run one block: every thread from its start to its end, barrier by barrier.
inline bool run_block(unsigned nthreads) {
    g_fibers.assign(nthreads, Fiber());
    if (g_stacks.size() < nthreads) g_stacks.resize(nthreads);
    for (unsigned t = 0; t < nthreads; ++t) {
        if (g_stacks[t].empty()) g_stacks[t].resize(kStack);
        getcontext(&g_fibers[t].ctx);
        g_fibers[t].ctx.uc_stack.ss_sp = g_stacks[t].data();
        g_fibers[t].ctx.uc_stack.ss_size = kStack;
        g_fibers[t].ctx.uc_link = nullptr;
        makecontext(&g_fibers[t].ctx, fiber_main, 0);
    }
    for (;;) {
        unsigned done = 0, waiting = 0;
        for (unsigned t = 0; t < nthreads; ++t) {
            Fiber& f = g_fibers[t];
            if (f.done) { ++done; continue; }
            f.at_barrier = false;
            threadIdx.x = t % blockDim.x;
            threadIdx.y = (t / blockDim.x) % blockDim.y;
            threadIdx.z = t / (blockDim.x * blockDim.y);
            g_current = (int)t;
            swapcontext(&g_scheduler, &f.ctx);
            if (f.done) ++done; else ++waiting;
        }
        if (waiting == 0) return true;
        if (done != 0) { g_error = "divergent __syncthreads(): some threads ended while others wait"; return false; }
    }
}

template <typename... A, size_t... I>
inline void call(void (*f)(A...), void** args, std::index_sequence<I...>) {
    f(*static_cast<std::remove_cv_t<std::remove_reference_t<A>>*>(args[I])...);
}

// The host passed `nargs` arguments of `sizes` bytes: they must be the kernel's parameters,
// one for one, each exactly the size of its type (what the driver would copy).
template <typename... A>
inline bool check_arguments(const size_t* sizes, int nargs) {
    static char message[256];
    const size_t expect[] = {sizeof(std::remove_cv_t<std::remove_reference_t<A>>)..., 0};
    if (nargs != (int)sizeof...(A)) {
        std::snprintf(message, sizeof message, "the kernel takes %d parameters but the launch passed %d",
                      (int)sizeof...(A), nargs);
        g_error = message;
        return false;
    }
    for (int i = 0; i < nargs; ++i) {
        if (sizes[i] != expect[i]) {
            std::snprintf(message, sizeof message, "parameter %d is %zu bytes in the kernel but the launch passed %zu",
                          i, expect[i], sizes[i]);
            g_error = message;
            return false;
        }
    }
    return true;
}

// Launch `f` over grid x block with CUDA-style argument pointers; 0 on success.
template <typename... A>
inline int launch(void (*f)(A...), const unsigned* grid, const unsigned* block, void** args, const size_t* sizes,
                  int nargs) {
    g_error = nullptr;
    if (!check_arguments<A...>(sizes, nargs)) return 1;
    gridDim = dim3{grid[0], grid[1], grid[2]};
    blockDim = dim3{block[0], block[1], block[2]};
    g_body = [&]() { call(f, args, std::index_sequence_for<A...>{}); };
    const unsigned nthreads = block[0] * block[1] * block[2];
    for (unsigned z = 0; z < grid[2]; ++z)
        for (unsigned y = 0; y < grid[1]; ++y)
            for (unsigned x = 0; x < grid[0]; ++x) {
                blockIdx = dim3{x, y, z};
                if (!run_block(nthreads)) return 1;
            }
    return 0;
}

}  // namespace gc_emu

inline void __syncthreads() { gc_emu::barrier(); }

extern "C" const char* gc_emu_error() { return gc_emu::g_error; }
