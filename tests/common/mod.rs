//! Shared test fixtures: the reference mixtures and tolerances.
#![allow(dead_code)]

use picardiff::prelude::*;

/// The 2-D example mixture (`Mixture::example_2d`, `examples/mixture_2d.json`).
pub fn mixture_2d() -> Mixture {
    Mixture::example_2d()
}

/// The 64-D example mixture (`Mixture::example_64d`, `examples/mixture_64d.json`).
pub fn mixture_64d() -> Mixture {
    Mixture::example_64d()
}

/// 1000-step DDPM grid and its schedule.
pub fn ddpm_grid(steps: usize) -> (Schedule, Grid) {
    let s = Schedule::from_name("ddpm-linear", 1000).unwrap();
    let g = Grid::discrete(&s, steps, Spacing::Leading).unwrap();
    (s, g)
}

/// Max |a − b|.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Per-component sample fractions and mean errors of `samples` (`[n][dim]`) against `mix` at the
/// data end (α = 1, σ = 0): returns (max |fraction − weight|, max over components of the RMS over
/// coordinates of the sample-mean error, max over components of the max-abs coordinate error).
pub fn component_errors(mix: &Mixture, samples: &[f32]) -> (f64, f64, f64) {
    let (k, d) = (mix.components(), mix.dim);
    let n = samples.len() / d;
    let mut count = vec![0usize; k];
    let mut sums = vec![0f64; k * d];
    for row in samples.chunks(d) {
        let c = mix.assign(row, 1.0, 0.0);
        count[c] += 1;
        for (s, &v) in sums[c * d..(c + 1) * d].iter_mut().zip(row) {
            *s += v as f64;
        }
    }
    let mut werr = 0f64;
    let (mut rms, mut maxabs) = (0f64, 0f64);
    for c in 0..k {
        werr = werr.max((count[c] as f64 / n as f64 - mix.weights[c]).abs());
        assert!(count[c] > 0, "component {c} got no samples");
        let errs: Vec<f64> = (0..d)
            .map(|j| sums[c * d + j] / count[c] as f64 - mix.mean(c)[j])
            .collect();
        rms = rms.max((errs.iter().map(|e| e * e).sum::<f64>() / d as f64).sqrt());
        maxabs = maxabs.max(errs.iter().fold(0.0, |m, e| m.max(e.abs())));
    }
    (werr, rms, maxabs)
}
