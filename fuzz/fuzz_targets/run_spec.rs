//! The run-spec config file (`picardiff sample --config run.toml|json`): arbitrary TOML or JSON
//! text gives a spec or one clear error, and a spec gives a plan or an error, never a panic, an
//! abort or a plan that breaks its own invariants.
#![no_main]

use libfuzzer_sys::fuzz_target;
use picardiff::sampler::SamplerKind;
use picardiff::schedule::ModelOutput;
use picardiff::spec::{ModelRun, RunSpec};

/// Whether planning `s` is cheap enough for one fuzz input (the grid is built).
fn cheap(s: &RunSpec) -> bool {
    s.steps.is_none_or(|n| n <= 20_000)
        && s.train_steps.is_none_or(|n| n <= 100_000)
        && s.kappa.is_none_or(|k| k >= 0.01)
        && s.horizon.is_none_or(|h| h.abs() <= 100.0)
        && s.block_len.is_none_or(|h| h >= 1e-3)
}

fuzz_target!(|data: &[u8]| {
    let Some((&kind, text)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(text) else { return };
    let spec = match RunSpec::from_text(text, kind % 2 == 1) {
        Ok(s) => s,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    if !cheap(&spec) {
        return;
    }
    let Ok(plan) = spec.plan(ModelRun::AnySchedule, ModelOutput::Epsilon) else { return };
    let steps = plan.grid.steps();
    assert!(steps >= 1);
    match plan.kind {
        SamplerKind::Picard { window, tol, .. } => {
            assert!(window >= 1 && window <= steps, "window {window} of {steps}");
            assert!(tol.is_finite() && tol >= 0.0);
        }
        SamplerKind::Blocks { iters, tol, .. } => assert!(iters >= 1 && tol.is_finite()),
        SamplerKind::Sequential => {}
    }
    // A spec survives a trip through JSON when its numbers are finite (JSON has no NaN).
    if let Ok(json) = serde_json::to_string(&spec) {
        if let Ok(back) = RunSpec::from_text(&json, true) {
            assert_eq!(serde_json::to_string(&back).ok(), Some(json));
        }
    }
});
