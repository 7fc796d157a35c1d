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
