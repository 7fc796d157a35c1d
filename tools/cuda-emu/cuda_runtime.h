// CPU emulation of the CUDA runtime features used by kernels/*.cu (tools/cuda-emu/run.sh). Logic only.
#pragma once
#include <atomic>
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <thread>
#include <vector>
#include <math.h>
#include <stdint.h>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static

typedef int cudaError_t;
typedef struct CUstream_st* cudaStream_t;
enum { cudaSuccess = 0, cudaErrorInvalidValue = 1, cudaErrorInvalidConfiguration = 9 };
inline cudaError_t cudaGetLastError() { return 0; }
inline const char* cudaGetErrorString(cudaError_t) { return "emulated"; }

struct dim3 {
    unsigned x = 1, y = 1, z = 1;
    dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct float4 { float x, y, z, w; };
inline float4 make_float4(float a, float b, float c, float d) { return float4{a, b, c, d}; }

#include <ucontext.h>
#include <cstdio>
#include <cstdlib>
namespace emu {
// Cooperative CUDA threads: each thread of a block is a ucontext coroutine; barriers yield.
enum Wait { RUN, BAR, WARP, DONE };
struct Thr { ucontext_t ctx; Wait st = RUN; };
inline std::vector<std::unique_ptr<char[]>> stacks;
constexpr size_t STACK = 128 * 1024;
struct Block {
    std::vector<Thr> th;
    ucontext_t sched;
    int cur = 0;
    std::vector<double> shfl;
};
inline thread_local dim3 tIdx, bIdx, bDim, gDim;
inline thread_local Block* blk;
inline void wait_for(Wait w) {
    Block* b = blk;
    int me = b->cur;
    b->th[me].st = w;
    swapcontext(&b->th[me].ctx, &b->sched);
}
}
#define threadIdx (emu::tIdx)
#define blockIdx (emu::bIdx)
#define blockDim (emu::bDim)
#define gridDim (emu::gDim)

inline void __syncthreads() { emu::wait_for(emu::BAR); }

template <class T> inline T __shfl_down_sync(unsigned, T v, int off) {
    const int t = threadIdx.x, lane = t % 32, w = t / 32;
    (void)w;
    T* buf = reinterpret_cast<T*>(emu::blk->shfl.data());
    buf[t] = v;
    emu::wait_for(emu::WARP);
    T r = lane + off < 32 ? buf[t + off] : v;
    emu::wait_for(emu::WARP);
    return r;
}
template <class T> inline T __shfl_sync(unsigned, T v, int src) {
    const int t = threadIdx.x, w = t / 32;
    T* buf = reinterpret_cast<T*>(emu::blk->shfl.data());
    buf[t] = v;
    emu::wait_for(emu::WARP);
    T r = buf[w * 32 + src];
    emu::wait_for(emu::WARP);
    return r;
}

inline float __fmul_rn(float a, float b) { volatile float r = a * b; return r; }
inline float __fadd_rn(float a, float b) { volatile float r = a + b; return r; }
inline float __fsub_rn(float a, float b) { volatile float r = a - b; return r; }
inline float __fdiv_rn(float a, float b) { volatile float r = a / b; return r; }
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
inline float __fsqrt_rn(float a) { return std::sqrt(a); }
inline double __dmul_rn(double a, double b) { volatile double r = a * b; return r; }
inline double __dadd_rn(double a, double b) { volatile double r = a + b; return r; }
inline double __dsub_rn(double a, double b) { volatile double r = a - b; return r; }
inline double __ddiv_rn(double a, double b) { volatile double r = a / b; return r; }
inline unsigned __umulhi(unsigned a, unsigned b) { return (unsigned)(((uint64_t)a * b) >> 32); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz((unsigned)x); }
inline float __uint_as_float(unsigned b) { float f; memcpy(&f, &b, 4); return f; }
inline unsigned __float_as_uint(float f) { unsigned b; memcpy(&b, &f, 4); return b; }
inline float __int_as_float(int b) { float f; memcpy(&f, &b, 4); return f; }
inline int __float_as_int(float f) { int b; memcpy(&b, &f, 4); return b; }
template <class T> inline T __ldg(const T* p) { return *p; }
template <class T> inline T __ldcs(const T* p) { return *p; }
template <class T> inline void __stcs(T* p, T v) { *p = v; }
inline int atomicMin(int* p, int v) {
    std::atomic_ref<int> a(*p);
    int cur = a.load();
    while (v < cur && !a.compare_exchange_weak(cur, v)) {}
    return cur;
}
inline int atomicMax(int* p, int v) {
    std::atomic_ref<int> a(*p);
    int cur = a.load();
    while (v > cur && !a.compare_exchange_weak(cur, v)) {}
    return cur;
}
inline int min(int a, int b) { return a < b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
using std::isfinite;
using std::isnan;

namespace emu {
inline thread_local std::function<void()>* body_fn;
inline void entry() {
    (*body_fn)();
    blk->th[blk->cur].st = DONE;
    swapcontext(&blk->th[blk->cur].ctx, &blk->sched);
}
// Runs the grid block after block; inside a block, threads run until they finish or wait at a
// barrier (__syncthreads: all live threads of the block; shuffles: all live threads of the warp).
inline void launch(dim3 grid, dim3 block, std::function<void()> body) {
    const unsigned nt = block.x * block.y * block.z;
    body_fn = &body;
    for (unsigned bz = 0; bz < grid.z; ++bz)
        for (unsigned by = 0; by < grid.y; ++by)
            for (unsigned bx = 0; bx < grid.x; ++bx) {
                Block b;
                b.th.resize(nt);
                b.shfl.resize(nt);
                blk = &b;
                bIdx = dim3(bx, by, bz);
                bDim = block;
                gDim = grid;
                for (unsigned t = 0; t < nt; ++t) {
                    auto& th = b.th[t];
                    while (stacks.size() <= t) stacks.emplace_back(new char[STACK]);
                    getcontext(&th.ctx);
                    th.ctx.uc_stack.ss_sp = stacks[t].get();
                    th.ctx.uc_stack.ss_size = STACK;
                    th.ctx.uc_link = nullptr;
                    makecontext(&th.ctx, entry, 0);
                }
                for (;;) {
                    bool ran = false;
                    for (unsigned t = 0; t < nt; ++t) {
                        if (b.th[t].st != RUN) continue;
                        b.cur = (int)t;
                        tIdx = dim3(t, 0, 0);
                        swapcontext(&b.sched, &b.th[t].ctx);
                        ran = true;
                    }
                    if (ran) continue;
                    bool all_done = true, released = false;
                    for (auto& th : b.th) all_done &= th.st == DONE;
                    if (all_done) break;
                    // warps whose live threads all wait at a shuffle
                    for (unsigned w = 0; w * 32 < nt; ++w) {
                        bool any = false, ok = true;
                        for (unsigned t = w * 32; t < std::min(nt, w * 32 + 32); ++t) {
                            if (b.th[t].st == DONE) continue;
                            any = true;
                            ok &= b.th[t].st == WARP;
                        }
                        if (any && ok) {
                            for (unsigned t = w * 32; t < std::min(nt, w * 32 + 32); ++t)
                                if (b.th[t].st == WARP) b.th[t].st = RUN;
                            released = true;
                        }
                    }
                    if (released) continue;
                    bool bar = true;
                    for (auto& th : b.th) bar &= th.st == DONE || th.st == BAR;
                    if (!bar) { fprintf(stderr, "emu: deadlock\n"); abort(); }
                    for (auto& th : b.th) if (th.st == BAR) th.st = RUN;
                }
            }
}
}
