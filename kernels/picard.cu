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

constexpr int SWEEP_MAX_THREADS = 256;
constexpr int SWEEP_MAX_WARPS = SWEEP_MAX_THREADS / WARP;
constexpr int ADVANCE_THREADS = 256;
constexpr int COPY_THREADS = 256;

// Threads per block and blocks per sample of the sweep: one thread per group of four elements of a
// sample (one Philox call), blocks of a multiple of 32 threads up to 256, sized down for small dim.
void sweep_layout(long long dim, int* threads, long long* bps) {
    const long long groups = (dim + 3) / 4;
    long long t = (groups + WARP - 1) / WARP * WARP;
    if (t > SWEEP_MAX_THREADS) t = SWEEP_MAX_THREADS;
    if (t < WARP) t = WARP;
    *threads = (int)t;
    *bps = (groups + t - 1) / t;
}

// ---------------------------------------------------------------------------------------------------
// picard_sweep_f32
//
// Memory: x, out: rings of R = window + 1 slots, slot = batch x dim f32 sample-major; point m in slot
// m % R. partial: [k][b][blk] f32 (k = m - start < window, blk < bps).
// Mapping: 1-D grid of batch x bps blocks; block i handles sample b = i / bps and element groups
// blk*T .. blk*T + T-1 of it; thread -> one group of four consecutive elements d = 4g .. 4g+3 (the
// Philox group g). Each thread runs the whole window m = start .. end-1 with the running state y and
// the old iterate x_old in registers, exactly as the CPU loop does per element:
//   y = x_old = X[s];  for m: yn = f(y, x_old, O[m], z_m); d = yn - X[m+1]; x_old = X[m+1]; X[m+1] = yn.
// The loads of point m + 1 are issued before the arithmetic of point m (software pipelining).
// Reduction: per (m, sample) the squared differences are summed per thread (lanes in order), per warp
// (shuffle-down tree), then per block by warp 0 (warps in order), buffered in shared memory for 32
// points between two __syncthreads; one partial per (point, sample, block). Fixed order, no atomics.
template <bool VEC, bool DRIFT>
__global__ void __launch_bounds__(SWEEP_MAX_THREADS) picard_sweep_f32(PicardParams P, int bps) {
    const int s = P.win->start, e = P.win->end;
    if (s >= P.steps || P.win->bad_point != 0) return; // uniform over the grid
    const int b = blockIdx.x / bps, blk = blockIdx.x % bps;
    const long long g = (long long)blk * blockDim.x + threadIdx.x;
    const long long left = P.dim - 4 * g;
    const int n = left <= 0 ? 0 : (left >= 4 ? 4 : (int)left);
    const int ring = P.window + 1;
    const long long slot = (long long)P.batch * P.dim;
    const long long row = (long long)b * P.dim + 4 * g;
    const int lane = threadIdx.x % WARP, warp = threadIdx.x / WARP, nwarps = blockDim.x / WARP;
    __shared__ float wsum[WARP][SWEEP_MAX_WARPS];

    float y[4], xo[4];
    int cur = s % ring;
    load4<VEC>(P.x + cur * slot + row, n, y);
#pragma unroll
    for (int i = 0; i < 4; ++i) xo[i] = y[i];

    // Software pipelining: the model output O[m] and old iterate X[m+1] of the next point are loaded
    // one iteration ahead (X[m+2] is a different slot from the X[m+1] written now, since
    // end - start <= window < ring), so their latency overlaps the noise and arithmetic of this point.
    int nxt = cur + 1 == ring ? 0 : cur + 1;
    float o_next[4], xn_next[4];
    if (s < e) {
        load4<VEC>(P.out + cur * slot + row, n, o_next);
        load4<VEC>(P.x + nxt * slot + row, n, xn_next);
    }
    for (int m = s; m < e; ++m) {
        float o[4], xn[4];
#pragma unroll
        for (int i = 0; i < 4; ++i) o[i] = o_next[i], xn[i] = xn_next[i];
        const int after = nxt + 1 == ring ? 0 : nxt + 1;
        if (m + 1 < e) {
            load4<VEC>(P.out + nxt * slot + row, n, o_next);
            load4<VEC>(P.x + after * slot + row, n, xn_next);
        }
        const StepCoef k = load_coef(P.tab, m);
        float z[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        if (k.c != 0.0f && n > 0) step_noise(P.noise, P.batch, P.dim, m, b, g, n, z);
        float sq = 0.0f;
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            if (i < n) {
                const float yn = DRIFT ? drift(k, y[i], xo[i], o[i], z[i]) : affine(k, y[i], xo[i], o[i], z[i]);
                const float d = __fsub_rn(yn, xn[i]);
                sq = __fadd_rn(sq, __fmul_rn(d, d));
                xo[i] = xn[i];
                y[i] = yn;
            }
        }
        store4<VEC>(P.x + nxt * slot + row, n, y);
        sq = warp_sum(sq);
        const int kk = m - s;
        if (lane == 0) wsum[kk % WARP][warp] = sq;
        if (kk % WARP == WARP - 1 || m == e - 1) { // uniform over the block
            __syncthreads();
            const int kr = kk - kk % WARP + threadIdx.x;
            if (threadIdx.x < WARP && kr <= kk) {
                float acc = wsum[threadIdx.x][0];
                for (int w = 1; w < nwarps; ++w) acc = __fadd_rn(acc, wsum[threadIdx.x][w]);
                P.partial[((long long)kr * P.batch + b) * bps + blk] = acc;
            }
            __syncthreads();
        }
        cur = nxt;
        nxt = after;
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
// next block when the block converged or spent K iterations. A non-finite point sets bad_point and
// freezes the window (the host reports Error::NonFinite). old_end records the end before advancing.
__global__ void __launch_bounds__(ADVANCE_THREADS) picard_advance_f32(PicardParams P, int bps) {
    PicardWindow* w = P.win;
    const int s = w->start, e = w->end;
    if (s >= P.steps || w->bad_point != 0) { // uniform: done or frozen, nothing to add
        if (threadIdx.x == 0) w->old_end = e;
        return;
    }
    const int len = e - s;
    __shared__ int first_fail, first_bad;
    if (threadIdx.x == 0) first_fail = first_bad = len;
    __syncthreads();
    const int lane = threadIdx.x % WARP, warp = threadIdx.x / WARP, nwarps = blockDim.x / WARP;
    const float dimf = (float)P.dim;
    int my_fail = len, my_bad = len;
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
        if (!isfinite(worst)) my_bad = min(my_bad, k);
        if (!isfinite(worst) || worst > P.tol2) my_fail = min(my_fail, k);
    }
    if (lane == 0) {
        atomicMin(&first_fail, my_fail);
        atomicMin(&first_bad, my_bad);
    }
    __syncthreads();
    if (threadIdx.x != 0) return;
    w->old_end = e;
    if (first_bad < len) {
        w->bad_point = s + 1 + first_bad;
        return;
    }
    const int fail = first_fail < len ? s + 1 + first_fail : e;
    w->iters += 1;
    w->nfe += len;
    if (P.mode == PICARDIFF_MODE_SLIDING) {
        w->start = fail;
        w->end = min(fail + P.window, P.steps);
    } else {
        w->block_iters += 1;
        if (fail == e || w->block_iters >= P.block_iters) {
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

bool aligned16(const void* p) { return ((uintptr_t)p & 15u) == 0; }

} // namespace

extern "C" int picardiff_sweep_blocks_per_sample(long long dim) {
    int threads;
    long long bps;
    sweep_layout(dim, &threads, &bps);
    return bps > INT_MAX ? INT_MAX : (int)bps;
}

extern "C" const char* picardiff_cuda_error_string(cudaError_t err) { return cudaGetErrorString(err); }

extern "C" cudaError_t launch_picard_sweep_f32(PicardParams p, cudaStream_t stream) {
    if (p.batch <= 0 || p.dim <= 0 || p.window <= 0) return cudaErrorInvalidValue;
    int threads;
    long long bps;
    sweep_layout(p.dim, &threads, &bps);
    const long long blocks = bps * p.batch;
    if (blocks > INT_MAX) return cudaErrorInvalidConfiguration;
    const bool vec = p.dim % 4 == 0 && aligned16(p.x) && aligned16(p.out);
    const bool drift = p.form == PICARDIFF_FORM_DRIFT;
    const int ibps = (int)bps;
    if (vec && drift) picard_sweep_f32<true, true><<<(unsigned)blocks, threads, 0, stream>>>(p, ibps);
    else if (vec) picard_sweep_f32<true, false><<<(unsigned)blocks, threads, 0, stream>>>(p, ibps);
    else if (drift) picard_sweep_f32<false, true><<<(unsigned)blocks, threads, 0, stream>>>(p, ibps);
    else picard_sweep_f32<false, false><<<(unsigned)blocks, threads, 0, stream>>>(p, ibps);
    return launch_status();
}

extern "C" cudaError_t launch_picard_advance_f32(PicardParams p, cudaStream_t stream) {
    if (p.batch <= 0 || p.dim <= 0 || p.window <= 0) return cudaErrorInvalidValue;
    int threads;
    long long bps;
    sweep_layout(p.dim, &threads, &bps);
    if (bps * p.batch > INT_MAX) return cudaErrorInvalidConfiguration;
    picard_advance_f32<<<1, ADVANCE_THREADS, 0, stream>>>(p, (int)bps);
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
