// kernels/elementwise.cu -- the sequential step (and its step counter), Philox normal fill and value
// fill.
//
// Twins of CpuBackend::step / seq_begin / normal_fill / fill (src/backend/cpu.rs).

#include "common.cuh"

using namespace picardiff;

namespace {

constexpr int THREADS = 256;

bool aligned16(const void* p) { return ((uintptr_t)p & 15u) == 0; }

// picard_step_f32
// Memory: x, out: batch x dim f32 sample-major (at the caller's offsets); noise table [steps][batch][dim].
// Mapping: grid-stride over (sample b, element group g) pairs, idx = b * groups + g; one thread updates
// elements 4g .. 4g+3 of sample b (one Philox call) in place: x = a x + b (p x + q o) + c z with the
// CPU's roundings (noise only when c_j != 0, as on the CPU). A non-finite result lowers *status to j
// (integer atomicMin: the outcome does not depend on the order). With clip_range > 0 the output is
// first corrected by clip_fix at the state x (the CPU's step_checked).
// j is P.j, or, with a step counter (the sequential sampler's CUDA graph, one graph for every step),
// *P.step_counter - 1: the step seq_begin_f32 began (one uniform load; no step outside 0..steps-1).
template <bool VEC>
__global__ void __launch_bounds__(THREADS) picard_step_f32(PicardStepParams P) {
    const int j = P.step_counter != nullptr ? *P.step_counter - 1 : P.j;
    if (j < 0 || j >= P.steps) return; // uniform over the grid
    const long long groups = (P.dim + 3) / 4, total = groups * P.batch;
    const StepCoef k = load_coef(P.tab, j);
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += stride) {
        const auto [b, g, n] = sample_group(idx, groups, P.dim);
        float* xp = P.x + (long long)b * P.dim + 4 * g;
        float xv[4], o[4], z[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        load4<VEC>(xp, n, xv);
        load4<VEC>(P.out + (long long)b * P.dim + 4 * g, n, o);
        if (k.c != 0.0f) step_noise(P.noise, P.batch, P.dim, j, b, g, n, z);
        bool finite = true;
        if (P.tab.clip_range > 0.0f) { // uniform
#pragma unroll
            for (int i = 0; i < 4; ++i) o[i] = clip_fix(k, P.tab.clip_range, xv[i], o[i]);
        }
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            xv[i] = affine(k, xv[i], xv[i], o[i], z[i]);
            finite &= i >= n || isfinite(xv[i]);
        }
        store4<VEC>(xp, n, xv);
        if (!finite) atomicMin(P.status, j);
    }
}

// seq_begin_f32
// Memory: counter: one int in device memory, the sequential steps begun; t[steps]; times: batch f32.
// Mapping: ONE block; its threads stride over the batch. Begins step j = *counter: times[b] = t[j] for
// every sample (the value fill_f32 would write with the host's t_j), then thread 0 sets *counter to
// j + 1, after every thread has read j. Past the last step (j == steps) it writes no time and sets the
// counter to steps + 1, so that the step kernel after it (j = steps) does nothing instead of running
// step steps - 1 again; beyond that it does nothing. Twin of CpuBackend::seq_begin (an error there).
__global__ void __launch_bounds__(THREADS) seq_begin_f32(int* counter, const float* t, float* times, int batch,
                                                         int steps) {
    const int j = *counter;
    __syncthreads(); // every thread has read j before thread 0 moves it
    if (j < 0 || j >= steps) { // uniform
        if (threadIdx.x == 0 && j == steps && steps < 0x7fffffff) *counter = steps + 1;
        return;
    }
    const float tj = t[j];
    for (int b = threadIdx.x; b < batch; b += blockDim.x) times[b] = tj;
    if (threadIdx.x == 0) *counter = j + 1;
}

// normal_fill_f32
// Memory: buf: batch x dim f32 sample-major. Mapping: grid-stride over (sample, group) as above; one
// thread writes elements 4g .. 4g+3 of sample b = Philox (seed, group g, step, sample0 + b, tag), the
// same bits as rng::fill_normal (a trailing partial group keeps its first lanes).
__global__ void __launch_bounds__(THREADS) normal_fill_f32(float* buf, int batch, long long dim,
                                                             unsigned long long seed, unsigned sample0,
                                                             unsigned step, unsigned tag) {
    const long long groups = (dim + 3) / 4, total = groups * batch;
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += stride) {
        const auto [b, g, n] = sample_group(idx, groups, dim);
        float z[4];
        philox_normal4(seed, (unsigned)g, step, sample0 + (unsigned)b, tag, z);
        float* p = buf + (long long)b * dim + 4 * g;
#pragma unroll
        for (int i = 0; i < 4; ++i)
            if (i < n) p[i] = z[i];
    }
}

// fill_f32. Memory: len f32. Mapping: grid-stride, one element per thread per iteration.
__global__ void __launch_bounds__(THREADS) fill_f32(float* buf, long long len, float value) {
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < len; i += stride) buf[i] = value;
}

} // namespace

extern "C" cudaError_t launch_picard_step_f32(PicardStepParams p, cudaStream_t stream) {
    if (p.batch <= 0 || p.dim <= 0 || p.steps <= 0) return cudaErrorInvalidValue;
    if (p.step_counter == nullptr && (p.j < 0 || p.j >= p.steps)) return cudaErrorInvalidValue;
    if (p.tab.history > 0) return launch_step_multistep(p, stream);
    const long long total = (p.dim + 3) / 4 * p.batch;
    const bool vec = p.dim % 4 == 0 && aligned16(p.x) && aligned16(p.out);
    if (vec) picard_step_f32<true><<<grid_for(total, THREADS), THREADS, 0, stream>>>(p);
    else picard_step_f32<false><<<grid_for(total, THREADS), THREADS, 0, stream>>>(p);
    return launch_status();
}

extern "C" cudaError_t launch_seq_begin_f32(int* counter, const float* t, float* times, int batch, int steps,
                                            cudaStream_t stream) {
    if (batch <= 0 || steps <= 0) return cudaErrorInvalidValue;
    seq_begin_f32<<<1, batch < THREADS ? (batch + WARP - 1) / WARP * WARP : THREADS, 0, stream>>>(counter, t, times,
                                                                                               batch, steps);
    return launch_status();
}

extern "C" cudaError_t launch_normal_fill_f32(float* buf, int batch, long long dim, unsigned long long seed,
                                              unsigned int sample0, unsigned int step, unsigned int tag,
                                              cudaStream_t stream) {
    if (batch <= 0 || dim <= 0) return cudaErrorInvalidValue;
    const long long total = (dim + 3) / 4 * batch;
    normal_fill_f32<<<grid_for(total, THREADS), THREADS, 0, stream>>>(buf, batch, dim, seed, sample0, step, tag);
    return launch_status();
}

extern "C" cudaError_t launch_fill_f32(float* buf, long long len, float value, cudaStream_t stream) {
    if (len <= 0) return cudaSuccess;
    fill_f32<<<grid_for(len, THREADS), THREADS, 0, stream>>>(buf, len, value);
    return launch_status();
}
