// kernels/multistep.cu -- multistep rules (DPM-Solver++ 2M/3M, docs/algorithms.md §9) on the device:
// the sequential step with its direction slots and the serial Picard sweep with the direction ring.
//
// Step j reads the directions d_m = p_m x_m + q_m o_m (x̂0 for DPM-Solver++) of point j and of the
// points before it: x_{j+1} = a_j x_j + b_j d_j + b1_j d_{j-1} + b2_j d_{j-2} (no noise, no clipping).
// Twins of CpuBackend::step_multistep / sweep_multistep (src/backend/cpu/multistep.rs): the same
// float operations in the same order, so the iterates are the CPU's bit for bit.

#include <limits.h>

#include "common.cuh"

using namespace picardiff;

namespace {

constexpr int STEP_THREADS = 256;

// The coefficients of the earlier points' directions in step j (PicardTables::hist_coef).
struct HistCoef {
    float b1, b2;
};

__device__ __forceinline__ HistCoef load_hist(const PicardTables& t, int j) {
    return HistCoef{__ldg(t.hist_coef + 2 * (long long)j), __ldg(t.hist_coef + 2 * (long long)j + 1)};
}

// Point m's direction p·x + q·o (multistep.rs `direction`).
__device__ __forceinline__ float direction(const StepCoef& k, float x, float o) {
    return __fadd_rn(__fmul_rn(k.p, x), __fmul_rn(k.q, o));
}

// a·y + b·d0 + b1·d1 + b2·d2, summed left to right (multistep.rs `combine`).
__device__ __forceinline__ float combine(const StepCoef& k, HistCoef h, float y, float d0, float d1, float d2) {
    const float s = __fadd_rn(__fadd_rn(__fmul_rn(k.a, y), __fmul_rn(k.b, d0)), __fmul_rn(h.b1, d1));
    return __fadd_rn(s, __fmul_rn(h.b2, d2));
}

// The drift form y + ((a − 1)·x_old + b·d0 + b1·d1 + b2·d2) (multistep.rs `sweep_multistep`).
__device__ __forceinline__ float drift_step(const StepCoef& k, HistCoef h, float y, float xo, float d0, float d1,
                                            float d2) {
    const float s = __fadd_rn(__fmul_rn(__fsub_rn(k.a, 1.0f), xo), __fmul_rn(k.b, d0));
    return __fadd_rn(y, __fadd_rn(__fadd_rn(s, __fmul_rn(h.b1, d1)), __fmul_rn(h.b2, d2)));
}

// picard_step_multistep_f32
// Memory: x: 1 + H slots of batch x dim f32 sample-major (the state, then the directions of points
// j - 1 and, for H = 2, j - 2); out: batch x dim. Mapping: grid-stride over the batch x dim elements,
// one thread per element: d = direction(x, o), x = combine(x, d, x[slot 1], x[slot 2]), then the
// directions shift (slot 2 = old slot 1, slot 1 = d). j as in picard_step_f32 (P.j, or the step
// counter's step). A non-finite state lowers *status to j (integer atomicMin, order-free).
__global__ void __launch_bounds__(STEP_THREADS) picard_step_multistep_f32(PicardStepParams P) {
    const int j = P.step_counter != nullptr ? *P.step_counter - 1 : P.j;
    if (j < 0 || j >= P.steps) return; // uniform over the grid
    const long long slot = (long long)P.batch * P.dim;
    const StepCoef k = load_coef(P.tab, j);
    const HistCoef h = load_hist(P.tab, j);
    const bool two = P.tab.history > 1;
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < slot; i += stride) {
        const float x = P.x[i], d = direction(k, x, P.out[i]);
        const float old1 = P.x[slot + i], old2 = two ? P.x[2 * slot + i] : 0.0f;
        const float v = combine(k, h, x, d, old1, old2);
        P.x[i] = v;
        if (two) P.x[2 * slot + i] = old1;
        P.x[slot + i] = d;
        if (!isfinite(v)) atomicMin(P.status, j);
    }
}

// picard_sweep_multistep_f32
// Memory: x, out: rings of R = window + 1 slots (slot = batch x dim f32 sample-major, point m in slot
// m % R); hist: the direction ring of hist_slots >= window + H slots, point m's direction in slot
// m % hist_slots; partial [k][b][u] exactly as picard_sweep_f32 (picard.cu), so picard_advance_f32
// is shared. Mapping: as picard_sweep_f32 (1-D grid of batch x bps blocks, one thread per group of
// four elements of sample b, the whole window serially). Per element, with y = x_old = X[s] and
// d1, d2 = the ring's directions of points s - 1, s - 2 (0 before point 0), for m = s .. e - 1:
//   d = direction(x_old, O[m]) -> hist[m];  yn = combine(y, d, d1, d2) (scan) or drift_step(..);
//   err += (yn - X[m+1])^2;  x_old = X[m+1];  X[m+1] = yn;  d2 = d1;  d1 = d.
// The ring slots of points s - 1 and s - 2 hold the directions of the sweep that last evaluated
// them (hist_slots >= window + H: this sweep's writes m = s .. e - 1 never reach them). Elements
// past dim (n < 4) compute on zeros and store nothing. Reduction as picard_sweep_f32: per thread in
// element order, warp shuffle-down tree, lane 0 stores one partial per (point, sample, warp).
template <bool VEC, bool DRIFT>
__global__ void __launch_bounds__(SWEEP_MAX_THREADS) picard_sweep_multistep_f32(PicardParams P, int bps, int units) {
    const int s = P.win->start, e = P.win->end;
    if (s >= P.steps || P.win->bad_point != 0) return; // uniform over the grid
    const int b = blockIdx.x / bps, blk = blockIdx.x % bps;
    const long long g = (long long)blk * blockDim.x + threadIdx.x;
    const long long left = P.dim - 4 * g;
    const int n = left <= 0 ? 0 : (left >= 4 ? 4 : (int)left);
    const long long slot = (long long)P.batch * P.dim, row = (long long)b * P.dim + 4 * g;
    const int ring = P.window + 1, hr = P.hist_slots;
    const int unit = blk * (blockDim.x / WARP) + threadIdx.x / WARP; // warp-uniform
    const bool store_partial = threadIdx.x % WARP == 0 && unit < units;
    float* part = P.partial + (long long)b * units + unit;
    const long long kstride = (long long)P.batch * units;

    float y[4], xo[4], d1[4] = {0.0f, 0.0f, 0.0f, 0.0f}, d2[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    load4<VEC>(P.x + (long long)(s % ring) * slot + row, n, y);
#pragma unroll
    for (int i = 0; i < 4; ++i) xo[i] = y[i];
    if (s >= 1) load4<VEC>(P.hist + (long long)((s - 1) % hr) * slot + row, n, d1);
    if (s >= 2 && P.tab.history > 1) load4<VEC>(P.hist + (long long)((s - 2) % hr) * slot + row, n, d2);
    for (int m = s; m < e; ++m) {
        const StepCoef k = load_coef(P.tab, m);
        const HistCoef h = load_hist(P.tab, m);
        float o[4], xn[4], d[4];
        load4<VEC>(P.out + (long long)(m % ring) * slot + row, n, o);
        float* next = P.x + (long long)((m + 1) % ring) * slot + row;
        load4<VEC>(next, n, xn);
        float sq = 0.0f;
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            d[i] = direction(k, xo[i], o[i]);
            const float yn = DRIFT ? drift_step(k, h, y[i], xo[i], d[i], d1[i], d2[i])
                                   : combine(k, h, y[i], d[i], d1[i], d2[i]);
            const float diff = __fsub_rn(yn, xn[i]);
            sq = __fadd_rn(sq, __fmul_rn(diff, diff));
            xo[i] = xn[i];
            y[i] = yn;
            d2[i] = d1[i];
            d1[i] = d[i];
        }
        store4<VEC>(P.hist + (long long)(m % hr) * slot + row, n, d);
        store4<VEC>(next, n, y);
        sq = warp_sum(sq);
        if (store_partial) *part = sq;
        part += kstride;
    }
}

bool aligned16(const void* p) { return ((uintptr_t)p & 15u) == 0; }

} // namespace

namespace picardiff {

cudaError_t launch_step_multistep(const PicardStepParams& p, cudaStream_t stream) {
    if (p.tab.hist_coef == nullptr || p.tab.history < 1 || p.tab.history > 2) return cudaErrorInvalidValue;
    const long long slot = (long long)p.batch * p.dim;
    picard_step_multistep_f32<<<grid_for(slot, STEP_THREADS), STEP_THREADS, 0, stream>>>(p);
    return launch_status();
}

cudaError_t launch_sweep_multistep(const PicardParams& p, cudaStream_t stream) {
    if (p.tab.hist_coef == nullptr || p.tab.history < 1 || p.tab.history > 2 || p.hist == nullptr ||
        p.hist_slots < p.window + p.tab.history)
        return cudaErrorInvalidValue;
    int threads;
    long long bps;
    sweep_layout(p.dim, &threads, &bps);
    const long long blocks = bps * p.batch, units = sweep_units(p.dim);
    if (units * p.batch > INT_MAX || blocks > INT_MAX) return cudaErrorInvalidConfiguration;
    const bool vec = p.dim % 4 == 0 && aligned16(p.x) && aligned16(p.out) && aligned16(p.hist);
    const bool drift = p.form == PICARDIFF_FORM_DRIFT;
    const unsigned grid = (unsigned)blocks;
    const int ib = (int)bps, iu = (int)units;
    if (vec && drift) picard_sweep_multistep_f32<true, true><<<grid, threads, 0, stream>>>(p, ib, iu);
    else if (vec) picard_sweep_multistep_f32<true, false><<<grid, threads, 0, stream>>>(p, ib, iu);
    else if (drift) picard_sweep_multistep_f32<false, true><<<grid, threads, 0, stream>>>(p, ib, iu);
    else picard_sweep_multistep_f32<false, false><<<grid, threads, 0, stream>>>(p, ib, iu);
    return launch_status();
}

} // namespace picardiff
