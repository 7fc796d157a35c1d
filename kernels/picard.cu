// kernels/picard.cu -- the fused Picard iteration on the device: sweep (scan/drift + noise + squared
// error partials), advance (window state machine, one block) and new-slot initialisation.
//
// The window state (PicardWindow) lives in device memory: every kernel reads start/end from it, so a
// whole iteration is enqueued with fixed grids and no host synchronisation; the host reads the state
// back only at the periodic completion check (CudaBackend::window_read).
//
// Twin of CpuBackend::picard_sweep / picard_advance (src/backend/cpu.rs) and WindowState::advance
// (src/backend/window.rs): keep the rules in step.

#include <limits.h>

#include "common.cuh"

using namespace picardiff;

namespace {

constexpr int ADVANCE_THREADS = 1024; // 32 warps: window points per warp = len / 32
constexpr int COPY_THREADS = 256;

bool aligned16(const void* p) { return ((uintptr_t)p & 15u) == 0; }

// Streaming (evict-first) loads / stores of the first n <= 4 of four consecutive floats: the rings
// are touched once per point and iteration, far beyond L2 at the sizes where bandwidth matters.
template <bool VEC>
__device__ __forceinline__ void load4_cs(const float* p, int n, float v[4]) {
    if (VEC) { // n is 0 or 4
        const float4 q = n == 4 ? __ldcs(reinterpret_cast<const float4*>(p)) : make_float4(0.f, 0.f, 0.f, 0.f);
        v[0] = q.x, v[1] = q.y, v[2] = q.z, v[3] = q.w;
    } else {
#pragma unroll
        for (int i = 0; i < 4; ++i) v[i] = i < n ? __ldcs(p + i) : 0.0f;
    }
}

template <bool VEC>
__device__ __forceinline__ void store4_cs(float* p, int n, const float v[4]) {
    if (VEC) { // n is 0 or 4
        if (n == 4) __stcs(reinterpret_cast<float4*>(p), make_float4(v[0], v[1], v[2], v[3]));
    } else {
#pragma unroll
        for (int i = 0; i < 4; ++i)
            if (i < n) __stcs(p + i, v[i]);
    }
}

// ---------------------------------------------------------------------------------------------------
// picard_sweep_f32
//
// Memory: x, out: rings of R = window + 1 slots, slot = batch x dim f32 sample-major; point m in slot
// m % R. partial: [k][b][u] f32 (k = m - start < window, u < U = sweep_units(dim): one unit per warp,
// i.e. per 32 Philox groups = 128 elements; unit u = blk * (T / 32) + warp).
// Mapping: 1-D grid of batch x bps blocks; block i handles sample b = i / bps and element groups
// blk*T .. blk*T + T-1 of it; thread -> one group of four consecutive elements d = 4g .. 4g+3 (the
// Philox group g). Each thread runs the whole window m = start .. end-1 with the running state y and
// the old iterate x_old in registers, exactly as the CPU loop does per element:
//   y = x_old = X[s];  for m: yn = f(y, x_old, O[m], z_m); d = yn - X[m+1]; x_old = X[m+1]; X[m+1] = yn.
// The loads of point m + 1 (O, X and its coefficient row) are issued before the arithmetic of point m
// (software pipelining): every warp of an SM reaches point m at about the same time, so a coefficient
// row loaded on demand would expose one L2 round trip per point (the loop of GPU runs 2-8 did).
// X and O are loaded and X stored with streaming hints (__ldcs / __stcs).
// Reduction: per (m, sample) the squared differences are summed per thread (elements in order), per
// warp (shuffle-down tree), and lane 0 stores one partial per (point, sample, warp): no block barrier,
// so warps never wait for each other. Fixed order, no atomics.
// Instruction budget (the Philox path is issue-bound on an H200, docs/perf run 6): per point a
// thread does its Philox + Box-Muller, 4 element updates, one warp tree and, besides, only
//  - two 16-byte loads of the packed coefficient row (the same address in every thread),
//  - one ring-offset advance (64-bit add, compare, select); the addresses of O[m+1], X[m+2] and the
//    store of X[m+1] are base + offset (the store reuses the address loaded one point earlier),
//  - one pointer bump for the partial;
// elements past dim (n < 4) run the same arithmetic on zeros (their noise zeroed), so there is no
// per-element branch: 0 - 0 squared adds +0 to the sum and nothing is stored for them.
// NOISE = false (a rule whose c_m are all 0) compiles the Philox path out: fewer registers.
// Measured and not kept (docs/perf runs 5, 6): loads issued 2 or 4 points ahead (more registers,
// lower occupancy) and register caps for 5 or 6 blocks per SM (the Philox path spills).
template <bool VEC, bool DRIFT, bool NOISE>
__global__ void __launch_bounds__(SWEEP_MAX_THREADS) picard_sweep_f32(PicardParams P, int bps, int units) {
    const int s = P.win->start, e = P.win->end;
    if (s >= P.steps || P.win->bad_point != 0) return; // uniform over the grid
    const int b = blockIdx.x / bps, blk = blockIdx.x % bps;
    const long long g = (long long)blk * blockDim.x + threadIdx.x;
    const long long left = P.dim - 4 * g;
    const int n = left <= 0 ? 0 : (left >= 4 ? 4 : (int)left);
    const long long slot = (long long)P.batch * P.dim;
    const long long ring_len = (long long)(P.window + 1) * slot;
    const long long row = (long long)b * P.dim + 4 * g;
    const int lane = threadIdx.x % WARP;
    const int unit = blk * (blockDim.x / WARP) + threadIdx.x / WARP; // warp-uniform
    const bool store_partial = lane == 0 && unit < units;
    float* part = P.partial + (long long)b * units + unit;
    const long long kstride = (long long)P.batch * units;
    float* const xrow = P.x + row;
    const float* const orow = P.out + row;
    // Element offset of the slot after the one at offset `off`.
    auto next_slot = [slot, ring_len](long long off) {
        off += slot;
        return off == ring_len ? 0ll : off;
    };

    float y[4], xo[4];
    long long cur = (long long)(s % (P.window + 1)) * slot; // slot of point m
    long long nxt = next_slot(cur);                          // slot of point m + 1
    load4<VEC>(xrow + cur, n, y);
#pragma unroll
    for (int i = 0; i < 4; ++i) xo[i] = y[i];

    // Software pipelining: the model output O[m] and old iterate X[m+1] of the next point are loaded
    // one iteration ahead (X[m+2] is a different slot from the X[m+1] written now, since
    // end - start <= window < ring), so their latency overlaps the noise and arithmetic of this point.
    float o_next[4], xn_next[4];
    StepCoef k_next{};
    if (s < e) {
        load4_cs<VEC>(orow + cur, n, o_next);
        load4_cs<VEC>(xrow + nxt, n, xn_next);
        k_next = load_coef(P.tab, s);
    }
    for (int m = s; m < e; ++m) {
        float o[4], xn[4];
#pragma unroll
        for (int i = 0; i < 4; ++i) o[i] = o_next[i], xn[i] = xn_next[i];
        const StepCoef k = k_next;
        const long long after = next_slot(nxt); // slot of point m + 2
        if (m + 1 < e) {
            load4_cs<VEC>(orow + nxt, n, o_next);
            load4_cs<VEC>(xrow + after, n, xn_next);
            k_next = load_coef(P.tab, m + 1);
        }
        float z[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        if (NOISE && k.c != 0.0f && n > 0) {
            step_noise(P.noise, P.batch, P.dim, m, b, g, n, z);
            if (!VEC) {
#pragma unroll
                for (int i = 1; i < 4; ++i) z[i] = i < n ? z[i] : 0.0f;
            }
        }
        if (P.tab.clip_range > 0.0f) { // uniform: o' from the OLD iterate X[m], as the CPU
#pragma unroll
            for (int i = 0; i < 4; ++i) o[i] = clip_fix(k, P.tab.clip_range, xo[i], o[i]);
        }
        float sq = 0.0f;
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const float yn = DRIFT ? drift(k, y[i], xo[i], o[i], z[i]) : affine(k, y[i], xo[i], o[i], z[i]);
            const float d = __fsub_rn(yn, xn[i]);
            sq = __fadd_rn(sq, __fmul_rn(d, d));
            xo[i] = xn[i];
            y[i] = yn;
        }
        store4_cs<VEC>(xrow + nxt, n, y);
        sq = warp_sum(sq);
        if (store_partial) *part = sq;
        part += kstride;
        nxt = after;
    }
}

// ---------------------------------------------------------------------------------------------------
// picard_sweep_scan_f32 (window-parallel; PICARDIFF_SWEEP_SCAN)
//
// Memory: as picard_sweep_f32 (x/out rings, slot = batch x dim sample-major, point m in slot m % R;
// partial [k][b][u] with the SAME units as the serial kernel, 32 Philox groups each, so
// picard_advance_f32 is shared).
// Mapping: 1-D grid of batch x U blocks; block i covers sample b = i / U and the NG <= 32 Philox groups
// of unit u = i % U (padded to NGP = next power of two). Block of
// C x NGP threads (C = min(64, SCAN_MAX_THREADS / NGP) chunks): thread t -> group gi = t % NGP and
// chunk c = t / NGP, i.e. the points m0 = s + c*per .. m1 = min(m0 + per, e) - 1 (per = ceil(len / C)).
// The recurrence y' = A_m y + u_m (scan: A = a, u = b*eps + c*z; drift: A = 1, u = inc, both from the
// OLD iterate) is associative, so:
//   1. each thread composes its chunk's maps (A, U) per element (reads X[m0..m1-1], O, noise) and
//      saves X_old[m0];
//   2. after __syncthreads, thread c = 0 of each group runs the C chunk maps from y = X_old[s] and
//      stores each chunk's incoming state in shared memory (C serial steps, not len);
//   3. after __syncthreads, every thread reruns its chunk serially from its incoming state exactly as
//      the serial kernel does (x_old in a register, X[m+1] read before it is overwritten); a chunk
//      only writes X[m0+1..m1], which only it reads in this phase, and X_old[m0] (written by chunk
//      c-1) was saved in phase 1, so reads precede writes without grid-wide synchronisation.
// Error: per point, a thread sums its <= 4 squares in order, a segmented shuffle-down tree sums the
// NGP (<= 32) groups of a chunk within the warp (aligned segments), group 0 stores the partial.
// Fixed shape, no atomics: deterministic. Results differ
// from the CPU's serial recurrence by rounding only (the maps are composed in another order).
constexpr int SCAN_MAX_THREADS = 1024;
constexpr int SCAN_MAX_CHUNKS = 64;

template <bool VEC, bool DRIFT>
__device__ __forceinline__ void scan_point(const PicardParams& P, int m, int b, long long g, int n, int ring,
                                           long long slot, long long row, const float xo[4], float A[4],
                                           float u[4]) {
    const StepCoef k = load_coef(P.tab, m);
    float o[4];
    load4<VEC>(P.out + (m % ring) * slot + row, n, o);
    float z[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    if (k.c != 0.0f && n > 0) step_noise(P.noise, P.batch, P.dim, m, b, g, n, z);
    if (P.tab.clip_range > 0.0f) { // uniform: o' from the old iterate X[m]
#pragma unroll
        for (int i = 0; i < 4; ++i) o[i] = clip_fix(k, P.tab.clip_range, xo[i], o[i]);
    }
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const float eps = __fadd_rn(__fmul_rn(k.p, xo[i]), __fmul_rn(k.q, o[i]));
        if (DRIFT) {
            A[i] = 1.0f;
            u[i] = __fadd_rn(__fadd_rn(__fmul_rn(__fsub_rn(k.a, 1.0f), xo[i]), __fmul_rn(k.b, eps)),
                             __fmul_rn(k.c, z[i]));
        } else {
            A[i] = k.a;
            u[i] = __fadd_rn(__fmul_rn(k.b, eps), __fmul_rn(k.c, z[i]));
        }
    }
}

template <bool VEC, bool DRIFT>
__global__ void __launch_bounds__(SCAN_MAX_THREADS) picard_sweep_scan_f32(PicardParams P, int bps) {
    const int s = P.win->start, e = P.win->end;
    if (s >= P.steps || P.win->bad_point != 0 || e <= s) return; // uniform over the grid
    const int b = blockIdx.x / bps, blk = blockIdx.x % bps;
    const long long groups = (P.dim + 3) / 4;
    const long long g0 = (long long)blk * WARP;
    const int ng = (int)(groups - g0 < WARP ? groups - g0 : WARP);
    int ngp = 1;
    while (ngp < ng) ngp <<= 1;
    const int nchunks = (int)(blockDim.x / ngp);
    const int gi = threadIdx.x % ngp, c = threadIdx.x / ngp;
    const long long g = g0 + gi;
    const long long left = P.dim - 4 * g;
    const int n = gi >= ng || left <= 0 ? 0 : (left >= 4 ? 4 : (int)left);
    const int ring = P.window + 1;
    const long long slot = (long long)P.batch * P.dim;
    const long long row = (long long)b * P.dim + 4 * (n > 0 ? g : 0);
    const int len = e - s, per = (len + nchunks - 1) / nchunks;
    const int m0 = s + c * per, m1 = min(m0 + per, e);
    __shared__ float aggA[SCAN_MAX_THREADS][4];
    __shared__ float aggU[SCAN_MAX_THREADS][4];

    // Phase 1: compose this chunk's maps; keep X_old[m0].
    float x0[4] = {0.0f, 0.0f, 0.0f, 0.0f}, CA[4] = {1.0f, 1.0f, 1.0f, 1.0f}, CU[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    if (m0 < m1) {
        load4<VEC>(P.x + (m0 % ring) * slot + row, n, x0);
        float xo[4];
#pragma unroll
        for (int i = 0; i < 4; ++i) xo[i] = x0[i];
        for (int m = m0; m < m1; ++m) {
            float A[4], u[4];
            scan_point<VEC, DRIFT>(P, m, b, g, n, ring, slot, row, xo, A, u);
#pragma unroll
            for (int i = 0; i < 4; ++i) {
                CU[i] = __fadd_rn(__fmul_rn(A[i], CU[i]), u[i]);
                CA[i] = __fmul_rn(A[i], CA[i]);
            }
            if (m + 1 < m1) load4<VEC>(P.x + ((m + 1) % ring) * slot + row, n, xo);
        }
    }
#pragma unroll
    for (int i = 0; i < 4; ++i) aggA[threadIdx.x][i] = CA[i], aggU[threadIdx.x][i] = CU[i];
    __syncthreads();
    // Phase 2: chunk 0 of each group turns the chunk maps into incoming states (stored in aggU).
    if (c == 0) {
        float y[4];
#pragma unroll
        for (int i = 0; i < 4; ++i) y[i] = x0[i]; // X_old[s]
        for (int cc = 0; cc < nchunks; ++cc) {
            const int t = cc * ngp + gi;
#pragma unroll
            for (int i = 0; i < 4; ++i) {
                const float nx = __fadd_rn(__fmul_rn(aggA[t][i], y[i]), aggU[t][i]);
                aggU[t][i] = y[i];
                y[i] = nx;
            }
        }
    }
    __syncthreads();
    // Phase 3: rerun the chunk from its incoming state, write Y and the error partials.
    float y[4], xo[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) y[i] = aggU[threadIdx.x][i], xo[i] = x0[i];
    for (int r = 0; r < per; ++r) { // uniform trip count
        const int m = m0 + r;
        float sq = 0.0f;
        if (m < m1) {
            float A[4], u[4], xn[4];
            scan_point<VEC, DRIFT>(P, m, b, g, n, ring, slot, row, xo, A, u);
            float* dst = P.x + ((m + 1) % ring) * slot + row;
            load4<VEC>(dst, n, xn);
#pragma unroll
            for (int i = 0; i < 4; ++i) {
                if (i < n) {
                    y[i] = __fadd_rn(__fmul_rn(A[i], y[i]), u[i]);
                    const float d = __fsub_rn(y[i], xn[i]);
                    sq = __fadd_rn(sq, __fmul_rn(d, d));
                    xo[i] = xn[i];
                }
            }
            store4<VEC>(dst, n, y);
        }
        // Segmented tree over the chunk's groups (aligned power-of-two segments of one warp).
        for (int off = ngp / 2; off > 0; off >>= 1) sq = __fadd_rn(sq, __shfl_down_sync(FULL_MASK, sq, off));
        if (gi == 0 && m < m1) P.partial[((long long)(m - s) * P.batch + b) * bps + blk] = sq;
    }
}

// ---------------------------------------------------------------------------------------------------
// picard_advance_f32
//
// Memory: reads partial [k][b][blk] and var[s + k]; updates the PicardWindow in place.
// Mapping: ONE block; warp w handles window points k = w, w + nwarps, ...; for each sample its lanes
// sum blk = lane, lane + 32, ... (in order) and a shuffle-down tree combines them: a fixed order for
// every (k, b), independent of which warp runs it. Per point: err = sum / (dim * var[s+k]), the max
// over samples with NaN/Inf -> +Inf (CPU: cpu.rs `point_err`). The first failing point (err > tol2 or
// non-finite) and the first non-finite point are integer min-reductions (order-free). Thread 0 then
// applies WindowState::advance: sliding -> start = first fail, end = min(start + p, steps); blocks ->
// next block when the block converged or spent K iterations, recording the block's residual (the max
// error of the points but the last, an integer max of the float bits) and the first block that ended
// above tol2. When the window holds the last point N, its error is the final-sample stop's: counted
// in final_sweeps/final_err, and with final_tol2 >= 0, from the second such iteration on, an error at
// most final_tol2 accepts every point (final_stopped = 1 if the per-point test would not have). A
// non-finite point sets bad_point and freezes the window (the host reports Error::NonFinite).
// old_end records the end before advancing.
__global__ void __launch_bounds__(ADVANCE_THREADS) picard_advance_f32(PicardParams P, int bps) {
    PicardWindow* w = P.win;
    const int s = w->start, e = w->end;
    if (s >= P.steps || w->bad_point != 0) { // uniform: done or frozen, nothing to add
        if (threadIdx.x == 0) w->old_end = e;
        return;
    }
    const int len = e - s;
    __shared__ int first_fail, first_bad, worst_bits;
    __shared__ float last_err; // the error of point e (k = len - 1)
    if (threadIdx.x == 0) {
        first_fail = first_bad = len;
        worst_bits = 0;
        last_err = 0.0f;
    }
    __syncthreads();
    const int lane = threadIdx.x % WARP, warp = threadIdx.x / WARP, nwarps = blockDim.x / WARP;
    const float dimf = (float)P.dim;
    int my_fail = len, my_bad = len;
    float my_worst = 0.0f;
    for (int k = warp; k < len; k += nwarps) {
        const float denom = __fmul_rn(dimf, P.tab.var[s + k]);
        float worst = 0.0f;
        for (int b = 0; b < P.batch; ++b) {
            const float* row = P.partial + ((long long)k * P.batch + b) * bps;
            float acc = 0.0f;
            for (int i = lane; i < bps; i += WARP) acc = __fadd_rn(acc, row[i]);
            acc = __shfl_sync(FULL_MASK, warp_sum(acc), 0);
            const float v = __fdiv_rn(acc, denom);
            worst = isfinite(v) ? fmaxf(worst, v) : INFINITY;
        }
        if (k == len - 1 && lane == 0) last_err = worst; // one warp, one lane: no race
        if (!isfinite(worst)) my_bad = min(my_bad, k);
        if (!isfinite(worst) || worst > P.tol2) my_fail = min(my_fail, k);
        if (isfinite(worst) && k < len - 1) my_worst = fmaxf(my_worst, worst); // not the last point
    }
    if (lane == 0) {
        atomicMin(&first_fail, my_fail);
        atomicMin(&first_bad, my_bad);
        // Non-negative finite floats order as their bits: an integer max is the float max.
        atomicMax(&worst_bits, __float_as_int(my_worst));
    }
    __syncthreads();
    if (threadIdx.x != 0) return;
    w->old_end = e;
    if (first_bad < len) {
        w->bad_point = s + 1 + first_bad;
        return;
    }
    int fail = first_fail < len ? s + 1 + first_fail : e;
    if (e == P.steps) {
        w->final_sweeps += 1;
        w->final_err = last_err;
        if (P.final_tol2 >= 0.0f && w->final_sweeps >= 2 && last_err <= P.final_tol2 && fail != e) {
            w->final_stopped = 1; // the final samples settled: accept every point
            fail = e;
        }
    }
    w->iters += 1;
    w->nfe += len;
    if (P.mode == PICARDIFF_MODE_SLIDING) {
        w->start = fail;
        w->end = min(fail + P.window, P.steps);
    } else {
        w->block_iters += 1;
        if (fail == e || w->block_iters >= P.block_iters) {
            // The block ends: its residual is the worst point error of this iteration.
            const float resid = __int_as_float(worst_bits);
            w->worst_block_err = fmaxf(w->worst_block_err, resid);
            if (fail != e && w->unconverged_block == 0) {
                w->unconverged_block = w->block + 1;
                w->unconverged_end = e;
                w->unconverged_err = resid;
            }
            w->start = e;
            w->block += 1;
            w->block_iters = 0;
            w->end = w->block < P.num_blocks ? P.block_ends[w->block] : e;
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// picard_new_slots_f32
//
// Memory: x ring (slot = batch x dim f32), times ring (R x batch f32), t[steps].
// Mapping: fixed 2-D grid; blockIdx.y strides over the new points m = old_end+1 .. end (read from the
// window state), the x-dimension grid-strides over the slot's elements (float4 when VEC) and copies
// X[old_end] into slot m % R; blocks with blockIdx.x == 0 also write the model times t[m] of slot m
// (for m < steps). No-op when old_end == end.
template <bool VEC>
__global__ void __launch_bounds__(COPY_THREADS) picard_new_slots_f32(PicardParams P) {
    const int from = P.win->old_end, to = P.win->end;
    if (to <= from) return;
    const int ring = P.window + 1;
    const long long slot = (long long)P.batch * P.dim;
    const long long n = VEC ? slot / 4 : slot;
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (int m = from + 1 + blockIdx.y; m <= to; m += gridDim.y) {
        if (VEC) {
            const float4* src = reinterpret_cast<const float4*>(P.x + (from % ring) * slot);
            float4* dst = reinterpret_cast<float4*>(P.x + (m % ring) * slot);
            for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) dst[i] = src[i];
        } else {
            const float* src = P.x + (from % ring) * slot;
            float* dst = P.x + (m % ring) * slot;
            for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) dst[i] = src[i];
        }
        if (m < P.steps && blockIdx.x == 0) {
            const float t = P.tab.t[m];
            for (int bb = threadIdx.x; bb < P.batch; bb += blockDim.x) P.times[(long long)(m % ring) * P.batch + bb] = t;
        }
    }
}


// The AUTO sweep path: the window-parallel scan when the serial kernel would run too few threads to
// hide its per-point latency (batch x dim < 2^16 elements, i.e. < 2^14 serial threads) and the window
// is long enough for chunking to pay (>= 16 points); the bandwidth-bound serial kernel otherwise.
// With tol2 == 0 ("reproduce the sequential sampler exactly") always the serial kernel: its iterates
// reach a bitwise fixed point like the CPU's, while the scan's chunk boundaries move with the window
// start and keep the last bits changing (measured on an H200: 115 rounds instead of 53 for a
// 200-point window at tau = 0, samples equal within 6e-7).
template <bool NOISE>
void launch_serial_n(const PicardParams& p, bool vec, bool drift, unsigned blocks, int threads, int bps, int units,
                     cudaStream_t stream) {
    if (vec && drift) picard_sweep_f32<true, true, NOISE><<<blocks, threads, 0, stream>>>(p, bps, units);
    else if (vec) picard_sweep_f32<true, false, NOISE><<<blocks, threads, 0, stream>>>(p, bps, units);
    else if (drift) picard_sweep_f32<false, true, NOISE><<<blocks, threads, 0, stream>>>(p, bps, units);
    else picard_sweep_f32<false, false, NOISE><<<blocks, threads, 0, stream>>>(p, bps, units);
}

void launch_serial(const PicardParams& p, bool vec, bool drift, unsigned blocks, int threads, int bps, int units,
                   cudaStream_t stream) {
    if (p.noisy) launch_serial_n<true>(p, vec, drift, blocks, threads, bps, units, stream);
    else launch_serial_n<false>(p, vec, drift, blocks, threads, bps, units, stream);
}

int sweep_auto(const PicardParams& p) {
    return (long long)p.batch * p.dim < (1ll << 16) && p.window >= 16 && p.tol2 > 0.0f
               ? PICARDIFF_SWEEP_SCAN
               : PICARDIFF_SWEEP_SERIAL;
}

} // namespace

extern "C" int picardiff_sweep_blocks_per_sample(long long dim) {
    const long long u = sweep_units(dim);
    return u > INT_MAX ? INT_MAX : (int)u;
}

extern "C" const char* picardiff_cuda_error_string(cudaError_t err) { return cudaGetErrorString(err); }

extern "C" cudaError_t launch_picard_sweep_f32(PicardParams p, cudaStream_t stream) {
    if (p.batch <= 0 || p.dim <= 0 || p.window <= 0) return cudaErrorInvalidValue;
    if (p.tab.history > 0) return launch_sweep_multistep(p, stream);
    int threads;
    long long bps;
    sweep_layout(p.dim, &threads, &bps);
    const long long blocks = bps * p.batch, units = sweep_units(p.dim);
    if (units * p.batch > INT_MAX) return cudaErrorInvalidConfiguration;
    const bool vec = p.dim % 4 == 0 && aligned16(p.x) && aligned16(p.out);
    const bool drift = p.form == PICARDIFF_FORM_DRIFT;
    const int ibps = (int)bps;
    const int path = p.sweep_path == PICARDIFF_SWEEP_AUTO ? sweep_auto(p) : p.sweep_path;
    if (path == PICARDIFF_SWEEP_SCAN) {
        const long long groups = (p.dim + 3) / 4;
        const long long ng = groups < WARP ? groups : WARP;
        int ngp = 1;
        while (ngp < ng) ngp <<= 1;
        int chunks = SCAN_MAX_THREADS / ngp;
        if (chunks > SCAN_MAX_CHUNKS) chunks = SCAN_MAX_CHUNKS;
        const int st = chunks * ngp;
        if (vec && drift) picard_sweep_scan_f32<true, true><<<(unsigned)(units * p.batch), st, 0, stream>>>(p, (int)units);
        else if (vec) picard_sweep_scan_f32<true, false><<<(unsigned)(units * p.batch), st, 0, stream>>>(p, (int)units);
        else if (drift) picard_sweep_scan_f32<false, true><<<(unsigned)(units * p.batch), st, 0, stream>>>(p, (int)units);
        else picard_sweep_scan_f32<false, false><<<(unsigned)(units * p.batch), st, 0, stream>>>(p, (int)units);
        return launch_status();
    }
    if (path != PICARDIFF_SWEEP_SERIAL) return cudaErrorInvalidValue;
    launch_serial(p, vec, drift, (unsigned)blocks, threads, ibps, (int)units, stream);
    return launch_status();
}

extern "C" cudaError_t launch_picard_advance_f32(PicardParams p, cudaStream_t stream) {
    if (p.batch <= 0 || p.dim <= 0 || p.window <= 0) return cudaErrorInvalidValue;
    const long long units = sweep_units(p.dim);
    if (units * p.batch > INT_MAX) return cudaErrorInvalidConfiguration;
    picard_advance_f32<<<1, ADVANCE_THREADS, 0, stream>>>(p, (int)units);
    return launch_status();
}

extern "C" cudaError_t launch_picard_new_slots_f32(PicardParams p, cudaStream_t stream) {
    if (p.batch <= 0 || p.dim <= 0 || p.window <= 0) return cudaErrorInvalidValue;
    const long long slot = (long long)p.batch * p.dim;
    const bool vec = slot % 4 == 0 && aligned16(p.x);
    dim3 grid(grid_for(vec ? slot / 4 : slot, COPY_THREADS, 2048), (unsigned)min(p.window, 16));
    if (vec) picard_new_slots_f32<true><<<grid, COPY_THREADS, 0, stream>>>(p);
    else picard_new_slots_f32<false><<<grid, COPY_THREADS, 0, stream>>>(p);
    return launch_status();
}
