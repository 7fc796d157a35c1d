// kernels/elementwise.cu -- the sequential step, Philox normal fill and value fill.
//
// Twins of CpuBackend::step / normal_fill / fill (src/backend/cpu.rs).

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
// (integer atomicMin: the outcome does not depend on the order).
template <bool VEC>
__global__ void __launch_bounds__(THREADS) picard_step_f32(PicardStepParams P) {
    const long long groups = (P.dim + 3) / 4, total = groups * P.batch;
    const StepCoef k = load_coef(P.tab, P.j);
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += stride) {
        const auto [b, g, n] = sample_group(idx, groups, P.dim);
        float* xp = P.x + (long long)b * P.dim + 4 * g;
        float xv[4], o[4], z[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        load4<VEC>(xp, n, xv);
        load4<VEC>(P.out + (long long)b * P.dim + 4 * g, n, o);
        if (k.c != 0.0f) step_noise(P.noise, P.batch, P.dim, P.j, b, g, n, z);
        bool finite = true;
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            xv[i] = affine(k, xv[i], xv[i], o[i], z[i]);
            finite &= i >= n || isfinite(xv[i]);
        }
        store4<VEC>(xp, n, xv);
        if (!finite) atomicMin(P.status, P.j);
    }
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
    if (p.batch <= 0 || p.dim <= 0 || p.j < 0) return cudaErrorInvalidValue;
    const long long total = (p.dim + 3) / 4 * p.batch;
    const bool vec = p.dim % 4 == 0 && aligned16(p.x) && aligned16(p.out);
    if (vec) picard_step_f32<true><<<grid_for(total, THREADS), THREADS, 0, stream>>>(p);
    else picard_step_f32<false><<<grid_for(total, THREADS), THREADS, 0, stream>>>(p);
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
