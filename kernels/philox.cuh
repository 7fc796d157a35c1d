// kernels/philox.cuh -- Philox4x32-10 Gaussian noise, the CUDA twin of src/rng.rs.
//
// THIS FILE MUST MATCH src/rng.rs BIT FOR BIT. Change both together, then regenerate and compare
// tests/data/philox_normals.json (reference f32 bit patterns of philox_normal4 for 16 inputs).
//
// Mapping (src/rng.rs, module doc, is the specification):
//  1. x = philox4x32_10(counter = {group, step, sample, tag}, key = {seed lo 32, seed hi 32}),
//     Random123 Philox4x32 with 10 rounds; element e of a sample's vector is lane e % 4 of group e / 4.
//  2. Word x stands for u = ((x >> 8) + 0.5) * 2^-24 = t * 2^-25 with odd t = (x >> 7) | 1; u is never
//     rounded to float, ln and sincos below read the exact integer t.
//  3. out = { r01 cos(2 pi u1), r01 sin(2 pi u1), r23 cos(2 pi u3), r23 sin(2 pi u3) },
//     r01 = sqrt(ln(u0) * -2), r23 = sqrt(ln(u2) * -2).
//  4. ln: z = clz(t), E = 31 - z + ((t << z) >= 0xB504F334), f = (float)(t - 2^E) * 2^-E, k = E - 25;
//     p = Horner(LOG[8..0], f) with fma; lp = fma(f * f, p, f); ln = fma(k, LN2_HI, fma(k, LN2_LO, lp)).
//  5. sincos: j = (t + 2^22) >> 23, a = (float)(t - j * 2^23) * 2^-23, y = a * a,
//     s = fma(a, SIN0, a * fma(fma(fma(SIN4, y, SIN3), y, SIN2), y, SIN1)),
//     c = fma(fma(fma(fma(COS4, y, COS3), y, COS2), y, COS1), y, 1); quadrant j & 3 gives
//     (cos, sin) = (c, s), (-s, c), (-c, -s), (s, -c).
//
// Only correctly rounded operations are used, spelled explicitly on the device (__fmaf_rn, __fmul_rn,
// __fsqrt_rn), so neither nvcc's FMA contraction nor -use_fast_math can change a result. No product
// feeds an addition outside an explicit fma, so host compilers cannot contract either (but do not
// build the host path with -ffast-math). Constants are exact f32 values written as hex floats (C++17).

#ifndef PICARDIFF_PHILOX_CUH
#define PICARDIFF_PHILOX_CUH

#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__CUDACC__)
#define PICARDIFF_HD __host__ __device__ __forceinline__
#else
#define PICARDIFF_HD inline
#endif
#if defined(__CUDA_ARCH__)
#define PICARDIFF_UNROLL _Pragma("unroll")
#else
#define PICARDIFF_UNROLL
#endif

// Noise stream tags (counter word 3); same values as TAG_* in src/rng.rs.
#define PICARDIFF_TAG_STEP 0u      // per-step noise of the stochastic update
#define PICARDIFF_TAG_INIT 1u      // initial state x_T
#define PICARDIFF_TAG_CORRECTOR 2u // corrector (Langevin) steps

namespace picardiff_philox {

PICARDIFF_HD uint32_t mulhi(uint32_t a, uint32_t b) {
#if defined(__CUDA_ARCH__)
    return __umulhi(a, b);
#else
    return (uint32_t)(((uint64_t)a * b) >> 32);
#endif
}

PICARDIFF_HD float fma_rn(float a, float b, float c) {
#if defined(__CUDA_ARCH__)
    return __fmaf_rn(a, b, c);
#else
    return fmaf(a, b, c);
#endif
}

PICARDIFF_HD float mul_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
    return __fmul_rn(a, b);
#else
    return a * b;
#endif
}

PICARDIFF_HD float sqrt_rn(float a) {
#if defined(__CUDA_ARCH__)
    return __fsqrt_rn(a);
#else
    return sqrtf(a);
#endif
}

PICARDIFF_HD float from_bits(uint32_t b) {
#if defined(__CUDA_ARCH__)
    return __uint_as_float(b);
#else
    float f;
    memcpy(&f, &b, sizeof f);
    return f;
#endif
}

PICARDIFF_HD uint32_t to_bits(float f) {
#if defined(__CUDA_ARCH__)
    return __float_as_uint(f);
#else
    uint32_t b;
    memcpy(&b, &f, sizeof b);
    return b;
#endif
}

PICARDIFF_HD uint32_t clz(uint32_t t) { // t != 0
#if defined(__CUDA_ARCH__)
    return (uint32_t)__clz((int)t);
#elif defined(__GNUC__) || defined(__clang__)
    return (uint32_t)__builtin_clz(t);
#else
    uint32_t n = 0;
    while (!(t & 0x80000000u)) { t <<= 1; ++n; }
    return n;
#endif
}

// 2^-e as an exact float, 0 <= e <= 126.
PICARDIFF_HD float pow2_neg(uint32_t e) { return from_bits((127u - e) << 23); }

// ln(t * 2^-25) for odd t in [1, 2^25): mapping step 4.
PICARDIFF_HD float ln_dyadic(uint32_t t) {
    const uint32_t z = clz(t);
    const uint32_t e = 31u - z + ((t << z) >= 0xB504F334u ? 1u : 0u);
    const float f = mul_rn((float)((int32_t)t - (int32_t)(1u << e)), pow2_neg(e));
    const float k = (float)((int32_t)e - 25);
    float p = -0x1.383ebcp-4f;              // LOG[8] -0.0762317
    p = fma_rn(p, f, 0x1.087e6p-3f);        // LOG[7]  0.12914729
    p = fma_rn(p, f, -0x1.0f4f0ep-3f);      // LOG[6] -0.132475
    p = fma_rn(p, f, 0x1.226b2ap-3f);       // LOG[5]  0.14180596
    p = fma_rn(p, f, -0x1.542402p-3f);      // LOG[4] -0.1660843
    p = fma_rn(p, f, 0x1.99a428p-3f);       // LOG[3]  0.20002013
    p = fma_rn(p, f, -0x1.000438p-2f);      // LOG[2] -0.2500161
    p = fma_rn(p, f, 0x1.55555p-2f);        // LOG[1]  0.33333325
    p = fma_rn(p, f, -0x1.fffff8p-2f);      // LOG[0] -0.49999988
    const float lp = fma_rn(mul_rn(f, f), p, f);
    return fma_rn(k, 0x1.62e4p-1f /* LN2_HI */, fma_rn(k, 0x1.7f7d1cp-20f /* LN2_LO */, lp));
}

// (cos 2 pi u, sin 2 pi u) for u = t * 2^-25, odd t in [1, 2^25): mapping step 5.
PICARDIFF_HD void sincos_2pi(uint32_t t, float* cos_out, float* sin_out) {
    const uint32_t j = (t + (1u << 22)) >> 23;
    const float a = mul_rn((float)((int32_t)t - (int32_t)(j << 23)), pow2_neg(23));
    const float y = mul_rn(a, a);
    float tail = -0x1.2db5a6p-8f;               // SIN[4] -0.0046037226
    tail = fma_rn(tail, y, 0x1.465facp-4f);     // SIN[3]  0.07968108
    tail = fma_rn(tail, y, -0x1.4abbbep-1f);    // SIN[2] -0.6459636
    tail = fma_rn(tail, y, -0x1.777a5cp-25f);   // SIN[1] -4.371139e-8 (pi/2 - SIN[0])
    const float s = fma_rn(a, 0x1.921fb6p+0f /* SIN[0] = (float)(pi/2) */, mul_rn(a, tail));
    float c = 0x1.d4f7eep-11f;                  // COS[4]  0.0008944864
    c = fma_rn(c, y, -0x1.55b2b6p-6f);          // COS[3] -0.020855596
    c = fma_rn(c, y, 0x1.03c1bp-2f);            // COS[2]  0.25366855
    c = fma_rn(c, y, -0x1.3bd3ccp+0f);          // COS[1] -1.2337005
    c = fma_rn(c, y, 1.0f);
    const bool swap = (j & 1u) != 0u;
    const float cq = swap ? s : c;
    const float sq = swap ? c : s;
    *cos_out = from_bits(to_bits(cq) ^ (((j + 1u) & 2u) << 30));
    *sin_out = from_bits(to_bits(sq) ^ ((j & 2u) << 30));
}

} // namespace picardiff_philox

// Random123 Philox4x32-10: out = philox4x32(ctr, key) with 10 rounds (same word order as Random123,
// so its known-answer vectors apply).
PICARDIFF_HD void philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    uint32_t k0 = key[0], k1 = key[1];
    PICARDIFF_UNROLL
    for (int round = 0; round < 10; ++round) {
        if (round > 0) {
            k0 += 0x9E3779B9u;
            k1 += 0xBB67AE85u;
        }
        const uint32_t hi0 = picardiff_philox::mulhi(0xD2511F53u, c0), lo0 = 0xD2511F53u * c0;
        const uint32_t hi1 = picardiff_philox::mulhi(0xCD9E8D57u, c2), lo1 = 0xCD9E8D57u * c2;
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

// Four standard normals: elements 4*group .. 4*group+3 of the noise vector of (step, sample) in stream
// tag; identical bits to picardiff::rng::normal4(seed, group, step, sample, tag).
PICARDIFF_HD void philox_normal4(unsigned long long seed, unsigned group, unsigned step,
                                 unsigned sample, unsigned tag, float out[4]) {
    using namespace picardiff_philox;
    const uint32_t ctr[4] = {group, step, sample, tag};
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    uint32_t x[4];
    philox4x32_10(ctr, key, x);
    const float r01 = sqrt_rn(mul_rn(ln_dyadic((x[0] >> 7) | 1u), -2.0f));
    const float r23 = sqrt_rn(mul_rn(ln_dyadic((x[2] >> 7) | 1u), -2.0f));
    float c1, s1, c3, s3;
    sincos_2pi((x[1] >> 7) | 1u, &c1, &s1);
    sincos_2pi((x[3] >> 7) | 1u, &c3, &s3);
    out[0] = mul_rn(r01, c1);
    out[1] = mul_rn(r01, s1);
    out[2] = mul_rn(r23, c3);
    out[3] = mul_rn(r23, s3);
}

// Element `element` (< 2^34) of that vector: lane element % 4 of group element / 4.
PICARDIFF_HD float philox_normal_at(unsigned long long seed, unsigned step, unsigned sample,
                                    unsigned long long element, unsigned tag) {
    float z[4];
    philox_normal4(seed, (unsigned)(element >> 2), step, sample, tag, z);
    return z[element & 3u];
}

#endif // PICARDIFF_PHILOX_CUH
