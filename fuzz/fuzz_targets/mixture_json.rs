//! The mixture JSON parser: any bytes give a mixture or an error, never a panic; an accepted mixture
//! is valid (finite, normalised weights, consistent shapes) and its score is finite.
#![no_main]

use libfuzzer_sys::fuzz_target;
use picardiff::prelude::*;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(mix) = Mixture::from_json(text) else { return };
    assert!(mix.dim > 0 && mix.components() > 0);
    assert_eq!(mix.means.len(), mix.dim * mix.components());
    let total: f64 = mix.weights.iter().sum();
    assert!((total - 1.0).abs() < 1e-9, "weights sum to {total}");
    if mix.dim * mix.components() > 1 << 16 {
        return;
    }
    let schedule = Schedule::from_name("ddpm-linear", 1000).unwrap();
    let model = GmmModel::new(mix.clone(), schedule);
    let cpu = CpuBackend;
    let mut ws = model.workspace(&cpu, 2).unwrap();
    let x = vec![0.5f32; 2 * mix.dim];
    let mut out = vec![0f32; 2 * mix.dim];
    model.eval(&cpu, &mut ws, &x, &vec![500.0, 10.0], 0, 2, &mut out).unwrap();
    // Means up to 1e308 overflow f32 honestly; only finite f32 means promise a finite score.
    if mix.means.iter().all(|m| m.abs() < 1e3) && mix.stds.iter().all(|s| *s < 1e3) {
        assert!(out.iter().all(|v| v.is_finite()), "non-finite score for {text}");
    }
});
