//! `--sampler auto`: the faster of the sequential sampler and the Picard window for the model,
//! backend and batch at hand, from a cost model calibrated on them (`docs/algorithms.md` §12).
//!
//! The sequential sampler costs N steps of one batch-row model call each; Picard costs its rounds
//! R times one iteration over the window (a model call over window × batch rows, the sweep and
//! the advance). Both per-iteration costs are measured through [`run`] itself, so the sweep, the
//! memory traffic and the backend's launch overheads count: a run capped at 1 iteration and one
//! capped at 1 + k (each the faster of two), whose difference over k is one iteration without the
//! run's setup, for the
//! run's own window and for a window of one point (the sequential step's work). The measurement
//! is kept for the process (per model, backend, batch, steps, window and form), so a control loop
//! pays it once. R is not known before the run: [`expected_rounds`] is an upper fit to the
//! measured frontier of the scan form at the default τ. Where R̂ ≥ N, Picard cannot be faster
//! and nothing is timed.

use std::sync::Mutex;
use std::time::Instant;

use super::{run, RunInputs, SamplerKind};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::model::ScoreModel;
use crate::schedule::{Grid, StepRule};

/// What auto chose and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    /// The sampler to run: [`SamplerKind::Sequential`] or the given Picard kind.
    pub kind: SamplerKind,
    /// The estimate it was chosen by.
    pub estimate: Estimate,
}

/// The cost model's figures for one (model, backend, batch, grid, window).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Estimate {
    /// The grid's steps N.
    pub steps: usize,
    /// The Picard window.
    pub window: usize,
    /// Expected Picard rounds R̂ ([`expected_rounds`]).
    pub rounds: usize,
    /// One sequential step (a one-point window's iteration), ms; None when nothing was timed.
    pub step_ms: Option<f64>,
    /// One Picard iteration over the whole window, ms; None when nothing was timed.
    pub iteration_ms: Option<f64>,
    /// Wall time spent measuring, ms (when the measurement was made, by this or an earlier run
    /// of the process).
    pub calibration_ms: f64,
}

impl Choice {
    /// The choice for a run's stats: `{"chosen": "sequential"|"picard", ...the estimate}`.
    pub fn stats(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self.estimate).unwrap_or_default();
        if let Some(m) = v.as_object_mut() {
            m.insert("chosen".into(), self.kind.name().into());
        }
        v
    }
}

impl Estimate {
    /// Estimated sequential run time, N × step, ms.
    pub fn sequential_ms(&self) -> Option<f64> {
        self.step_ms.map(|s| s * self.steps as f64)
    }

    /// Estimated Picard run time, R̂ × iteration, ms.
    pub fn picard_ms(&self) -> Option<f64> {
        self.iteration_ms.map(|i| i * self.rounds as f64)
    }

    /// One line saying what was chosen and why (for stderr).
    pub fn reason(&self, chose_picard: bool) -> String {
        let chosen = if chose_picard { "picard" } else { "sequential" };
        match (self.sequential_ms(), self.picard_ms()) {
            (Some(seq), Some(par)) => format!(
                "{chosen}: estimated {seq:.3} ms sequential ({} steps × {:.4} ms) against \
                 {par:.3} ms picard (~{} rounds × {:.4} ms per iteration of the {}-step window; \
                 {:.1} ms to measure)",
                self.steps,
                self.step_ms.unwrap_or(0.0),
                self.rounds,
                self.iteration_ms.unwrap_or(0.0),
                self.window,
                self.calibration_ms
            ),
            _ => format!(
                "{chosen}: picard needs about {} rounds for {} steps, no fewer than the \
                 sequential sampler's",
                self.rounds, self.steps
            ),
        }
    }
}

/// Expected rounds of the Picard scan form at the default τ over `steps` steps:
/// min(N, ⌈13 + 10·log10 N⌉), an upper fit to the measured rounds (DDIM-10 10, DPM-Solver++-20
/// 14, DDIM-25 18–19, DDIM-100 25, DDPM-100 31–33, DDPM-1000 41: `docs/perf/2026-12-04-frontier.md`).
pub fn expected_rounds(steps: usize) -> usize {
    let fit = (13.0 + 10.0 * (steps.max(1) as f64).log10()).ceil() as usize;
    fit.min(steps)
}

/// Picks the faster of the sequential sampler and `picard` (a [`SamplerKind::Picard`]) for `model`
/// on `backend` with `inputs`; ties go to the sequential sampler (it is exact).
pub fn choose<B: Backend, M: ScoreModel<B>>(
    backend: &B,
    model: &M,
    grid: &Grid,
    rule: StepRule,
    picard: &SamplerKind,
    inputs: &RunInputs<'_>,
) -> Result<Choice> {
    let SamplerKind::Picard { window, form, .. } = picard else {
        return Err(Error::config(
            crate::Field::Sampler,
            format!(
                "auto chooses between sequential and picard, not {}",
                picard.name()
            ),
        ));
    };
    let steps = grid.steps();
    let window = (*window).clamp(1, steps.max(1));
    let mut estimate = Estimate {
        steps,
        window,
        rounds: expected_rounds(steps),
        step_ms: None,
        iteration_ms: None,
        calibration_ms: 0.0,
    };
    if estimate.rounds >= steps {
        return Ok(Choice {
            kind: SamplerKind::Sequential,
            estimate,
        });
    }
    let key = Key {
        model: (model as *const M as usize, std::any::type_name::<M>()),
        backend: (backend as *const B as usize, backend.name()),
        batch: inputs.batch,
        steps,
        window,
        drift: *form != crate::backend::PicardForm::Scan,
    };
    let (step_ms, iteration_ms, calibration_ms) = match cached(&key) {
        Some(costs) => costs,
        None => {
            let start = Instant::now();
            // Each length is timed twice and the faster kept: the first run of a process pays
            // for page faults and thread start-up that no later run sees.
            let time = |w: usize, extra: usize| -> Result<f64> {
                let best = |iters: usize| -> Result<f64> {
                    let a = capped_run_ms(backend, model, grid, rule, w, *form, iters, inputs)?;
                    let b = capped_run_ms(backend, model, grid, rule, w, *form, iters, inputs)?;
                    Ok(a.min(b))
                };
                let (t1, tk) = (best(1)?, best(1 + extra)?);
                // At least a microsecond: timer noise must not make an iteration free.
                Ok(((tk - t1) / extra as f64).max(1e-3))
            };
            let step = time(1, 4)?;
            let iteration = time(window, 1)?;
            let costs = (step, iteration, start.elapsed().as_secs_f64() * 1e3);
            remember(key, costs);
            costs
        }
    };
    estimate.step_ms = Some(step_ms);
    estimate.iteration_ms = Some(iteration_ms);
    estimate.calibration_ms = calibration_ms;
    let faster = estimate.picard_ms() < estimate.sequential_ms();
    Ok(Choice {
        kind: if faster {
            picard.clone()
        } else {
            SamplerKind::Sequential
        },
        estimate,
    })
}

/// What a measurement is kept under: the model and backend (by address and type: a model freed
/// and another made at its address can only inherit a speed estimate, never a result), and the
/// run's shape.
#[derive(Debug, Clone, PartialEq)]
struct Key {
    model: (usize, &'static str),
    backend: (usize, &'static str),
    batch: usize,
    steps: usize,
    window: usize,
    drift: bool,
}

/// One measurement: step ms, iteration ms, the time it took to measure (ms).
type Costs = (f64, f64, f64);

/// Measurements kept, newest last.
static MEASURED: Mutex<Vec<(Key, Costs)>> = Mutex::new(Vec::new());
/// At most this many measurements are kept (the oldest is dropped).
const KEPT: usize = 64;

fn cached(key: &Key) -> Option<Costs> {
    let kept = MEASURED.lock().unwrap_or_else(|p| p.into_inner());
    kept.iter().rev().find(|(k, _)| k == key).map(|(_, c)| *c)
}

fn remember(key: Key, costs: Costs) {
    let mut kept = MEASURED.lock().unwrap_or_else(|p| p.into_inner());
    if kept.len() >= KEPT {
        kept.remove(0);
    }
    kept.push((key, costs));
}

/// Wall time of a Picard run with `window` capped at `iters` iterations (its result unused).
#[allow(clippy::too_many_arguments)]
fn capped_run_ms<B: Backend, M: ScoreModel<B>>(
    backend: &B,
    model: &M,
    grid: &Grid,
    rule: StepRule,
    window: usize,
    form: crate::backend::PicardForm,
    iters: usize,
    inputs: &RunInputs<'_>,
) -> Result<f64> {
    let kind = SamplerKind::Picard {
        window,
        tol: 0.0,
        max_iters: Some(iters),
        form,
        anderson: None,
    };
    let t = Instant::now();
    match run(backend, model, grid, rule, &kind, inputs) {
        Ok(_) | Err(Error::NotConverged { .. }) => Ok(t.elapsed().as_secs_f64() * 1e3),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::expected_rounds;

    #[test]
    fn the_rounds_fit_bounds_the_measured_frontier() {
        // (steps, rounds measured by the scan form at the default τ, frontier docs)
        for (n, measured) in [(10, 10), (20, 14), (25, 19), (100, 33), (1000, 41)] {
            let r = expected_rounds(n);
            assert!(r >= measured && r <= n, "N {n}: {r} vs measured {measured}");
        }
        assert_eq!(expected_rounds(1), 1);
        assert_eq!(expected_rounds(0), 0);
    }
}
