// kernels/common.cuh -- helpers shared by the picardiff kernels: launch checks, deterministic warp and
// block reductions, the step arithmetic written with explicit roundings, and the noise source.
//
// Determinism: every reduction here has a fixed shape (shuffle-down trees, then warp results summed
// in warp order by one thread), so results depend only on the launch configuration, never on
// scheduling. No float atomics anywhere.
//
// Arithmetic: where a kernel mirrors CPU arithmetic (src/backend/cpu.rs), it is spelled with
// __fmul_rn / __fadd_rn / __fsub_rn, which nvcc never contracts into FMAs, so CPU and GPU round
// identically when their inputs agree.

#ifndef PICARDIFF_COMMON_CUH
#define PICARDIFF_COMMON_CUH

#include <cuda_runtime.h>
#include <stdint.h>

#include "philox.cuh"
#include "picardiff_kernels.h"

namespace picardiff {

constexpr unsigned FULL_MASK = 0xffffffffu;
constexpr int WARP = 32;

// Blocks for `n` work items of `threads` each, capped for grid-stride loops.
inline unsigned grid_for(long long n, int threads, long long cap = 1ll << 20) {
    long long g = (n + threads - 1) / threads;
    if (g < 1) g = 1;
    if (g > cap) g = cap;
    return (unsigned)g;
}

// Status of the launches just made (configuration errors and earlier asynchronous failures).
inline cudaError_t launch_status() { return cudaGetLastError(); }

// The serial Picard sweeps' layout (picard.cu, multistep.cu). Threads per block and blocks per
// sample: one thread per group of four elements of a sample (one Philox call), blocks of a multiple
// of 32 threads up to SWEEP_MAX_THREADS, sized down for small dim.
constexpr int SWEEP_MAX_THREADS = 256;
inline void sweep_layout(long long dim, int* threads, long long* bps) {
    const long long groups = (dim + 3) / 4;
    long long t = (groups + WARP - 1) / WARP * WARP;
    if (t > SWEEP_MAX_THREADS) t = SWEEP_MAX_THREADS;
    if (t < WARP) t = WARP;
    *threads = (int)t;
    *bps = (groups + t - 1) / t;
}

// Error partial units per sample: one per warp of the serial sweep = 32 Philox groups = 128 elements.
inline long long sweep_units(long long dim) { return ((dim + 3) / 4 + WARP - 1) / WARP; }

// The multistep rules' launchers (multistep.cu), called by launch_picard_step_f32 and
// launch_picard_sweep_f32 for a table with history > 0.
cudaError_t launch_step_multistep(const PicardStepParams& p, cudaStream_t stream);
cudaError_t launch_sweep_multistep(const PicardParams& p, cudaStream_t stream);

// Sum over the warp; lane 0 holds the result (fixed shuffle-down tree).
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int off = WARP / 2; off > 0; off >>= 1) v = __fadd_rn(v, __shfl_down_sync(FULL_MASK, v, off));
    return v;
}

__device__ __forceinline__ double warp_sum(double v) {
#pragma unroll
    for (int off = WARP / 2; off > 0; off >>= 1) v = __dadd_rn(v, __shfl_down_sync(FULL_MASK, v, off));
    return v;
}

__device__ __forceinline__ double warp_max(double v) {
#pragma unroll
    for (int off = WARP / 2; off > 0; off >>= 1) v = fmax(v, __shfl_down_sync(FULL_MASK, v, off));
    return v;
}

// Block-wide sum (or max) of a double, returned to every thread. All threads must call it; `smem`
// holds at least blockDim.x / 32 + 1 doubles. Warp results are combined by thread 0 in warp order.
template <bool MAX>
__device__ __forceinline__ double block_reduce(double v, double* smem) {
    const int lane = threadIdx.x % WARP, warp = threadIdx.x / WARP, nwarps = (blockDim.x + WARP - 1) / WARP;
    v = MAX ? warp_max(v) : warp_sum(v);
    __syncthreads(); // smem may still be read by a previous call
    if (lane == 0) smem[warp] = v;
    __syncthreads();
    if (threadIdx.x == 0) {
        double acc = smem[0];
        for (int w = 1; w < nwarps; ++w) acc = MAX ? fmax(acc, smem[w]) : __dadd_rn(acc, smem[w]);
        smem[nwarps] = acc;
    }
    __syncthreads();
    return smem[nwarps];
}

// The (sample b, Philox group g) pair of a flat index idx = b * groups + g over batch x dim values,
// and how many of the group's four elements exist: n = min(4, dim - 4g).
struct SampleGroup {
    int b;
    long long g;
    int n;
};

__device__ __forceinline__ SampleGroup sample_group(long long idx, long long groups, long long dim) {
    const int b = (int)(idx / groups);
    const long long g = idx - (long long)b * groups;
    const long long left = dim - 4 * g;
    return SampleGroup{b, g, left >= 4 ? 4 : (int)left};
}

// One scalar step's coefficients, and the clip columns (u, v, f; zero without clipping).
struct StepCoef {
    float a, b, c, p, q, u, v, f;
};

// Row j of the packed table (picardiff_kernels.h): two 16-byte loads, the same address in every thread.
__device__ __forceinline__ StepCoef load_coef(const PicardTables& t, int j) {
    const float4* row = reinterpret_cast<const float4*>(t.coef) + 2 * (long long)j;
    const float4 u = __ldg(row), v = __ldg(row + 1);
    return StepCoef{u.x, u.y, u.z, u.w, v.x, v.y, v.z, v.w};
}

// a*y + b*(p*x + q*o) + c*z with the CPU's roundings (cpu.rs `affine`).
__device__ __forceinline__ float affine(const StepCoef& k, float y, float x, float o, float z) {
    const float eps = __fadd_rn(__fmul_rn(k.p, x), __fmul_rn(k.q, o));
    return __fadd_rn(__fadd_rn(__fmul_rn(k.a, y), __fmul_rn(k.b, eps)), __fmul_rn(k.c, z));
}

// The clipped-x0 correction of model output o at state x (cpu.rs `clip_fix`, docs/algorithms.md §7)
// with the CPU's roundings: o + f*(clamp(x0, -r, r) - x0), x0 = u*x + v*o. The clamp keeps a NaN x0
// (as Rust's f32::clamp; fminf/fmaxf would not). Callers apply it only when clip_range > 0.
__device__ __forceinline__ float clip_fix(const StepCoef& k, float r, float x, float o) {
    const float x0 = __fadd_rn(__fmul_rn(k.u, x), __fmul_rn(k.v, o));
    const float cl = x0 < -r ? -r : (x0 > r ? r : x0);
    return __fadd_rn(o, __fmul_rn(k.f, __fsub_rn(cl, x0)));
}

// y + ((a - 1)*x + b*(p*x + q*o) + c*z): ParaDiGMS' drift form with the CPU's roundings.
__device__ __forceinline__ float drift(const StepCoef& k, float y, float x, float o, float z) {
    const float eps = __fadd_rn(__fmul_rn(k.p, x), __fmul_rn(k.q, o));
    const float inc = __fadd_rn(__fadd_rn(__fmul_rn(__fsub_rn(k.a, 1.0f), x), __fmul_rn(k.b, eps)),
                                __fmul_rn(k.c, z));
    return __fadd_rn(y, inc);
}

// The step noise of elements 4g .. 4g+3 (only the first n <= 4 are used) of sample b at step j:
// Philox (tag PICARDIFF_TAG_STEP, counter (g, j, sample0 + b, tag)) or the table [steps][batch][dim].
__device__ __forceinline__ void step_noise(const PicardNoise& nz, int batch, long long dim, int j, int b,
                                           long long g, int n, float z[4]) {
    if (nz.table == nullptr) {
        philox_normal4(nz.seed, (unsigned)g, (unsigned)j, nz.sample0 + (unsigned)b, PICARDIFF_TAG_STEP, z);
    } else {
        const float* row = nz.table + ((long long)j * batch + b) * dim + 4 * g;
#pragma unroll
        for (int i = 0; i < 4; ++i) z[i] = i < n ? __ldg(row + i) : 0.0f;
    }
}

// Loads / stores of the first n <= 4 of four consecutive floats (missing lanes load as 0). VEC: one
// 16-byte access; only for 16-byte aligned data with dim % 4 == 0, where n is 0 or 4.
template <bool VEC>
__device__ __forceinline__ void load4(const float* p, int n, float v[4]) {
    if (VEC) { // n is 0 or 4
        const float4 q = n == 4 ? *reinterpret_cast<const float4*>(p) : make_float4(0.f, 0.f, 0.f, 0.f);
        v[0] = q.x, v[1] = q.y, v[2] = q.z, v[3] = q.w;
    } else {
#pragma unroll
        for (int i = 0; i < 4; ++i) v[i] = i < n ? p[i] : 0.0f;
    }
}

template <bool VEC>
__device__ __forceinline__ void store4(float* p, int n, const float v[4]) {
    if (VEC) { // n is 0 or 4
        if (n == 4) *reinterpret_cast<float4*>(p) = make_float4(v[0], v[1], v[2], v[3]);
    } else {
#pragma unroll
        for (int i = 0; i < 4; ++i)
            if (i < n) p[i] = v[i];
    }
}

} // namespace picardiff

#endif // PICARDIFF_COMMON_CUH
