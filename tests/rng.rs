//! Tests of the Philox4x32-10 noise generator (`picardiff::rng`): known answers, determinism,
//! independence of the element grouping, accuracy against an f64 evaluation of the same mapping,
//! statistics of 10⁶ draws, and the CPU reference values in `tests/data/philox_normals.json` that
//! the CUDA twin (`kernels/philox.cuh`) must reproduce bit for bit.

use picardiff::rng::*;

/// Test data is opened relative to the package root (the working directory of `cargo test`).
const NORMALS_JSON: &str = "tests/data/philox_normals.json";

#[test]
fn philox_known_answers() {
    // Random123 tests/kat_vectors, "philox4x32 10" lines (CTR[4] KEY[2] -> EXPECTED[4]); the same
    // three lines are quoted by several independent ports (found with the code search, queried
    // "philox4x32 10 kat_vectors"). The last two come from the longer generated list in Random123's
    // examples/kat_vectors (as mirrored in github.com/girving/random123-manual).
    #[rustfmt::skip]
    let cases: [([u32; 4], [u32; 2], [u32; 4]); 5] = [
        ([0, 0, 0, 0], [0, 0], [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]),
        ([u32::MAX; 4], [u32::MAX; 2], [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]),
        ([0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0],
         [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]),
        ([1, 0, 0, 0], [1, 0], [0xac08141b, 0xdfc5ccbe, 0x79c07a47, 0xa7f66093]),
        ([0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0, 1],
         [0x126514c3, 0xd1898b69, 0xda2707b3, 0x6e6fb436]),
    ];
    for (ctr, key, want) in cases {
        let got = philox4x32_10(ctr, key);
        assert_eq!(got, want, "philox4x32_10({ctr:08x?}, {key:08x?})");
    }
}

#[test]
fn tags_are_distinct() {
    assert_ne!(TAG_STEP, TAG_INIT);
    assert_ne!(TAG_STEP, TAG_CORRECTOR);
    assert_ne!(TAG_INIT, TAG_CORRECTOR);
}

#[test]
fn deterministic_and_sensitive_to_every_coordinate() {
    let base = normal4(7, 3, 11, 5, TAG_STEP);
    assert_eq!(
        base.map(f32::to_bits),
        normal4(7, 3, 11, 5, TAG_STEP).map(f32::to_bits)
    );
    for other in [
        normal4(8, 3, 11, 5, TAG_STEP),
        normal4(7 | 1 << 40, 3, 11, 5, TAG_STEP),
        normal4(7, 4, 11, 5, TAG_STEP),
        normal4(7, 3, 12, 5, TAG_STEP),
        normal4(7, 3, 11, 6, TAG_STEP),
        normal4(7, 3, 11, 5, TAG_INIT),
        normal4(7, 3, 11, 5, TAG_CORRECTOR),
    ] {
        assert!(
            base.iter().zip(other).all(|(a, b)| *a != b),
            "{base:?} vs {other:?}"
        );
    }
    for z in base {
        assert!(z.is_finite());
    }
}

#[test]
fn grouping_does_not_matter() {
    for len in (0..=13).chain([37, 1001]) {
        let mut out = vec![f32::NAN; len];
        fill_normal(99, 4, 2, TAG_STEP, &mut out);
        for (e, z) in out.iter().enumerate() {
            let want = normal_at(99, 4, 2, e, TAG_STEP);
            assert_eq!(z.to_bits(), want.to_bits(), "len {len}, element {e}");
            assert_eq!(want, normal4(99, (e / 4) as u32, 4, 2, TAG_STEP)[e % 4]);
        }
    }
    // A prefix of a longer vector is the shorter vector: the noise does not depend on D's split.
    let (mut long, mut short) = (vec![0.0; 64], vec![0.0; 30]);
    fill_normal(5, 1, 0, TAG_INIT, &mut long);
    fill_normal(5, 1, 0, TAG_INIT, &mut short);
    assert_eq!(&long[..30], &short[..]);
}

/// The mapping evaluated in f64 from the exact uniforms: lanes of `normal4` for Philox output `x`.
fn reference(x: [u32; 4]) -> [f64; 4] {
    let u = |w: u32| (f64::from(w >> 8) + 0.5) * 2f64.powi(-24);
    let (r01, r23) = ((-2.0 * u(x[0]).ln()).sqrt(), (-2.0 * u(x[2]).ln()).sqrt());
    let (s1, c1) = (std::f64::consts::TAU * u(x[1])).sin_cos();
    let (s3, c3) = (std::f64::consts::TAU * u(x[3])).sin_cos();
    [r01 * c1, r01 * s1, r23 * c3, r23 * s3]
}

#[test]
fn accurate_against_f64_reference() {
    let seed = 0x0123_4567_89ab_cdef_u64;
    let (mut max_abs, mut max_rel) = (0.0f64, 0.0f64);
    for group in 0..250_000u32 {
        let x = philox4x32_10([group, 17, 3, TAG_STEP], [seed as u32, (seed >> 32) as u32]);
        let want = reference(x);
        let got = normal4(seed, group, 17, 3, TAG_STEP);
        for (g, w) in got.into_iter().zip(want) {
            let err = (f64::from(g) - w).abs();
            max_abs = max_abs.max(err);
            max_rel = max_rel.max(err / w.abs().max(1.0));
        }
    }
    println!("normal4 vs f64 (1e6 values): max |err| {max_abs:.3e}, relative {max_rel:.3e}");
    assert!(max_abs < 1e-5, "max abs error {max_abs}");
    assert!(max_rel < 1e-6, "max relative error {max_rel}");
}

#[test]
fn radius_is_accurate_in_the_tails() {
    // |z| = r when the angle is 0: compare r = sqrt(-2 ln u) on uniforms near 0 and near 1, where
    // a poor logarithm would show first (x[0] < 2⁸ gives the smallest u = 2⁻²⁵).
    let (mut worst, mut checked) = (0.0f64, 0);
    for group in 0..400_000u32 {
        let x = philox4x32_10([group, 0, 0, TAG_INIT], [1, 2]);
        if x[0] >> 24 != 0 && x[0] >> 24 != 0xff {
            continue;
        }
        checked += 1;
        let z = normal4(1 | 2 << 32, group, 0, 0, TAG_INIT);
        let want = reference(x);
        let r = f64::from(z[0]).hypot(f64::from(z[1]));
        let r_want = want[0].hypot(want[1]);
        worst = worst.max((r / r_want - 1.0).abs());
    }
    println!("radius in the tails ({checked} pairs): max relative error {worst:.3e}");
    assert!(
        checked > 2000 && worst < 5e-7,
        "{checked} pairs, worst {worst}"
    );
}

/// Standard normal CDF at each of the sorted points, by Simpson integration of the density from -9.
fn normal_cdf_sorted(sorted: &[f64]) -> Vec<f64> {
    let pdf = |x: f64| (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt();
    let (mut x, mut acc) = (-9.0f64, 1.1e-19);
    let mut out = Vec::with_capacity(sorted.len());
    for &next in sorted {
        let n = ((next - x) / 0.01).ceil().max(1.0);
        let h = (next - x) / n;
        for i in 0..n as usize {
            let a = x + i as f64 * h;
            acc += h / 6.0 * (pdf(a) + 4.0 * pdf(a + h / 2.0) + pdf(a + h));
        }
        x = next;
        out.push(acc);
    }
    out
}

#[test]
fn statistics_of_a_million_draws() {
    let n = 1_000_000usize;
    let mut z = vec![0.0f32; n];
    fill_normal(2024, 0, 0, TAG_STEP, &mut z[..n / 2]);
    fill_normal(2024, 1, 9, TAG_STEP, &mut z[n / 2..]);
    let nf = n as f64;
    let mean = z.iter().map(|&v| f64::from(v)).sum::<f64>() / nf;
    let var = z
        .iter()
        .map(|&v| (f64::from(v) - mean).powi(2))
        .sum::<f64>()
        / (nf - 1.0);
    let tail = z.iter().filter(|v| v.abs() > 3.0).count() as f64 / nf;
    let lag1 = z.windows(2).map(|w| f64::from(w[0] * w[1])).sum::<f64>() / nf;
    let cross = (0..n / 2)
        .map(|i| f64::from(z[i] * z[n / 2 + i]))
        .sum::<f64>()
        / (nf / 2.0);
    // P(|z| > 3) = erfc(3/√2).
    let p3 = 0.002_699_796_063_260_186_6;
    let mut sorted: Vec<f64> = z.iter().map(|&v| f64::from(v)).collect();
    sorted.sort_by(f64::total_cmp);
    let cdf = normal_cdf_sorted(&sorted);
    let ks = cdf
        .iter()
        .enumerate()
        .map(|(i, &f)| {
            (f - i as f64 / nf)
                .abs()
                .max(((i + 1) as f64 / nf - f).abs())
        })
        .fold(0.0, f64::max);
    println!(
        "mean {mean:.2e}, var {var:.5}, P(|z|>3) {tail:.5} (want {p3:.5}), lag-1 corr {lag1:.2e}, \
         step/sample cross corr {cross:.2e}, KS D {ks:.2e} (sqrt(n)·D = {:.3})",
        ks * nf.sqrt()
    );
    // Four standard errors each.
    assert!(mean.abs() < 4.0 / nf.sqrt(), "mean {mean}");
    assert!(
        (var - 1.0).abs() < 4.0 * (2.0 / nf).sqrt(),
        "variance {var}"
    );
    assert!(
        (tail - p3).abs() < 4.0 * (p3 * (1.0 - p3) / nf).sqrt(),
        "tail {tail}"
    );
    assert!(lag1.abs() < 4.0 / nf.sqrt(), "lag-1 correlation {lag1}");
    assert!(
        cross.abs() < 4.0 / (nf / 2.0).sqrt(),
        "cross correlation {cross}"
    );
    // Kolmogorov–Smirnov at the 0.1% level: sqrt(n)·D < 1.95.
    assert!(ks * nf.sqrt() < 1.95, "KS statistic {ks}");
}

/// One reference case: Philox coordinates and the four expected outputs.
struct Case {
    seed: u64,
    group: u32,
    step: u32,
    sample: u32,
    tag: u32,
}

fn cases() -> Vec<Case> {
    #[rustfmt::skip]
    let raw: [(u64, u32, u32, u32, u32); 16] = [
        (0, 0, 0, 0, TAG_STEP), (0, 1, 0, 0, TAG_STEP), (0, 0, 1, 0, TAG_STEP),
        (0, 0, 0, 1, TAG_STEP), (0, 0, 0, 0, TAG_INIT), (0, 0, 0, 0, TAG_CORRECTOR),
        (42, 7, 999, 3, TAG_STEP), (42, 7, 999, 3, TAG_INIT), (1 << 32, 5, 6, 7, TAG_STEP),
        (u64::MAX, u32::MAX, u32::MAX, u32::MAX, TAG_CORRECTOR),
        (0x0123_4567_89ab_cdef, 250, 1000, 63, TAG_STEP), (0xdead_beef, 1, 2, 3, TAG_INIT),
        (2024, 12345, 0, 15, TAG_STEP), (2024, 12346, 0, 15, TAG_STEP),
        (7, 0x8000_0000, 511, 0, TAG_STEP), (0xffff_ffff, 31, 17, 1, TAG_CORRECTOR),
    ];
    raw.iter()
        .map(|&(seed, group, step, sample, tag)| Case {
            seed,
            group,
            step,
            sample,
            tag,
        })
        .collect()
}

fn case_json(c: &Case) -> String {
    let z = normal4(c.seed, c.group, c.step, c.sample, c.tag);
    let bits: Vec<String> = z
        .iter()
        .map(|v| format!("\"{:08x}\"", v.to_bits()))
        .collect();
    let vals: Vec<String> = z.iter().map(|v| format!("{v:?}")).collect();
    format!(
        "    {{\"seed\": \"{:#x}\", \"group\": {}, \"step\": {}, \"sample\": {}, \"tag\": {}, \
         \"normal_bits\": [{}], \"normal\": [{}]}}",
        c.seed,
        c.group,
        c.step,
        c.sample,
        c.tag,
        bits.join(", "),
        vals.join(", ")
    )
}

fn normals_json() -> String {
    let cases: Vec<String> = cases().iter().map(case_json).collect();
    format!(
        "{{\n  \"generator\": \"picardiff::rng::normal4 (Philox4x32-10, Box-Muller)\",\n  \
         \"note\": \"seed is a u64 in hex; normal_bits are the f32 bit patterns of lanes 0..4, \
         which kernels/philox.cuh (philox_normal4) must reproduce exactly; regenerate with cargo \
         test --test rng -- --ignored write_normals_json\",\n  \"cases\": [\n{}\n  ]\n}}\n",
        cases.join(",\n")
    )
}

#[test]
fn reference_file_matches() {
    let text =
        std::fs::read_to_string(NORMALS_JSON).expect("reading tests/data/philox_normals.json");
    let doc: serde_json::Value = serde_json::from_str(&text).expect("parsing philox_normals.json");
    let cases = doc["cases"].as_array().expect("cases");
    assert_eq!(cases.len(), 16);
    for c in cases {
        let seed = c["seed"].as_str().unwrap().trim_start_matches("0x");
        let seed = u64::from_str_radix(seed, 16).unwrap();
        let int = |k: &str| u32::try_from(c[k].as_u64().unwrap()).unwrap();
        let z = normal4(seed, int("group"), int("step"), int("sample"), int("tag"));
        let want: Vec<u32> = c["normal_bits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| u32::from_str_radix(b.as_str().unwrap(), 16).unwrap())
            .collect();
        assert_eq!(z.map(f32::to_bits).to_vec(), want, "case {c}");
        for (v, w) in c["normal"].as_array().unwrap().iter().zip(z) {
            assert_eq!(v.as_f64().unwrap() as f32, w, "case {c}");
        }
    }
}

#[test]
#[ignore = "writes tests/data/philox_normals.json; run only when the mapping changes on purpose"]
fn write_normals_json() {
    std::fs::write(NORMALS_JSON, normals_json()).expect("writing philox_normals.json");
}
