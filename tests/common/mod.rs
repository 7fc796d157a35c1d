//! Shared test fixtures: the reference mixtures and tolerances.
#![allow(dead_code)]

use picardiff::prelude::*;

/// A 2-D, 2-component mixture with unequal weights.
pub fn mixture_2d() -> Mixture {
    Mixture::new(
        vec![0.3, 0.7],
        vec![vec![-2.0, 1.0], vec![1.5, -1.0]],
        vec![0.4, 0.6],
    )
    .unwrap()
}

/// A 64-D, 8-component mixture with distinct weights, well-separated means and spreads.
pub fn mixture_64d() -> Mixture {
    let (k, d) = (8, 64);
    let weights: Vec<f64> = (0..k).map(|i| 1.0 + i as f64 * 0.25).collect();
    let means: Vec<Vec<f64>> = (0..k)
        .map(|i| {
            (0..d)
                .map(|j| 1.5 * (((i * 7 + j * 3) % 11) as f64 / 5.0 - 1.0))
                .collect()
        })
        .collect();
    let stds: Vec<f64> = (0..k).map(|i| 0.3 + 0.05 * i as f64).collect();
    Mixture::new(weights, means, stds).unwrap()
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
