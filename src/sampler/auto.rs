//! `--sampler auto`: the faster of the sequential sampler and the Picard window for the model,
//! backend and batch at hand, from a cost model calibrated on them (`docs/algorithms.md` §12).
//!
//! The sequential sampler costs N steps of one batch-row model call each; Picard costs its rounds
//! R times one iteration over the window (a model call over window × batch rows, the sweep and
//! the advance). Both costs are measured through [`run`] itself, so the sweep, the memory traffic
//! and the backend's launch overheads count, as differences that leave out a run's setup: the
//! sequential sampler over the grid's first 1 and 1 + k steps, and Picard over the run's window
//! capped at 1 and at 5 iterations (after a rough first figure that settles hopeless cases). The
//! measurement is kept for the process (per model, backend, batch, steps, window and form), so a
//! control loop pays it once. R is not known before the run: [`expected_rounds`] is an upper fit
//! to the measured frontier. Where R̂ ≥ N, Picard cannot be
//! faster and nothing is timed.

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
    /// `iteration_ms` is the rough figure (one capped run less the sequential run's setup: at
    /// least the iteration), which already lost by twice.
    pub rough: bool,
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
                 {}{par:.3} ms picard (~{} rounds × {:.4} ms per iteration of the {}-step window; \
                 {:.1} ms to measure)",
                self.steps,
                self.step_ms.unwrap_or(0.0),
                if self.rough { "at least " } else { "" },
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

/// Expected rounds R̂ of `picard` (a [`SamplerKind::Picard`]) over `steps` steps of `rule`, an
/// upper fit to the measured frontier. Stopped by the final samples (a `final_tol`, the drift form
/// and a window holding every step: the default there): min(N, ⌈6 + 4·log10 N⌉) for deterministic
/// rules, min(N, ⌈10 + 10·log10 N⌉) for stochastic ones (`docs/perf/2026-12-07-defaults.md`).
/// Otherwise, the scan at the per-step τ: min(N, ⌈13 + 10·log10 N⌉) (DDIM-10 10, DPM-Solver++-20
/// 14, DDIM-25 18–19, DDIM-100 25, DDPM-100 31–33, DDPM-1000 41: `docs/perf/2026-12-04-frontier.md`).
pub fn expected_rounds(steps: usize, picard: &SamplerKind, rule: StepRule) -> usize {
    let final_stop = matches!(picard, SamplerKind::Picard { window, form, final_tol: Some(_), .. }
        if *window >= steps && *form == crate::backend::PicardForm::Drift);
    let (base, slope) = match (final_stop, rule.is_stochastic()) {
        (true, false) => (6.0, 4.0),
        (true, true) => (10.0, 10.0),
        (false, _) => (13.0, 10.0),
    };
    let fit = (base + slope * (steps.max(1) as f64).log10()).ceil() as usize;
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
        rounds: expected_rounds(steps, picard, rule),
        step_ms: None,
        iteration_ms: None,
        rough: false,
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
        shape: (model.dim(), model.cond_dim()),
        backend: (backend as *const B as usize, backend.name()),
        batch: inputs.batch,
        steps,
        window,
        drift: *form != crate::backend::PicardForm::Scan,
    };
    let costs = match cached(&key) {
        Some(costs) => costs,
        None => {
            let start = Instant::now();
            let (step, seq_setup) = step_ms(backend, model, grid, rule, inputs)?;
            // Each capped run twice, the faster kept (timer and scheduler noise).
            let best = |iters: usize| -> Result<f64> {
                let run =
                    || capped_run_ms(backend, model, grid, rule, window, *form, iters, inputs);
                Ok(run()?.min(run()?))
            };
            // First a rough figure: one iteration with the run's setup, less the sequential
            // run's (smaller) setup, so at least the iteration. Where even that is within twice
            // the sequential time, the precise one: runs capped at 1 and at 1 + 4 iterations,
            // whose difference leaves the setup out.
            let once = best(1)?;
            let rough = (once - seq_setup).max(step);
            let rounds = estimate.rounds as f64;
            let (iteration, rough_only) = if rough * rounds >= 2.0 * step * steps as f64 {
                (rough, true)
            } else {
                (((best(5)? - once) / 4.0).max(step), false)
            };
            let costs = Costs {
                step,
                iteration,
                rough_only,
                measuring: start.elapsed().as_secs_f64() * 1e3,
            };
            remember(key, costs);
            costs
        }
    };
    estimate.step_ms = Some(costs.step);
    estimate.iteration_ms = Some(costs.iteration);
    estimate.rough = costs.rough_only;
    estimate.calibration_ms = costs.measuring;
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
    /// The model's dim and conditioning width.
    shape: (usize, usize),
    backend: (usize, &'static str),
    batch: usize,
    steps: usize,
    window: usize,
    drift: bool,
}

/// One measurement, ms.
#[derive(Debug, Clone, Copy)]
struct Costs {
    /// A sequential step.
    step: f64,
    /// A Picard iteration over the window (at least a step).
    iteration: f64,
    /// `iteration` is the rough figure (it includes part of the run's setup).
    rough_only: bool,
    /// The time it took to measure.
    measuring: f64,
}

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

/// The least a measured step or iteration may cost, ms: timer noise must not make one free.
const MIN_MS: f64 = 1e-3;

/// One sequential step on `grid` and a sequential run's setup, ms: sequential runs over its
/// first 1 and 1 + k steps
/// (k a tenth of the steps, 2 to 16), whose difference over k leaves out the run's setup. The
/// short run goes twice and the faster is kept: a process's first run pays for page faults and
/// thread start-up that later runs do not.
fn step_ms<B: Backend, M: ScoreModel<B>>(
    backend: &B,
    model: &M,
    grid: &Grid,
    rule: StepRule,
    inputs: &RunInputs<'_>,
) -> Result<(f64, f64)> {
    let k = (grid.steps() / 10).clamp(2, 16).min(grid.steps() - 1);
    // A caller's noise table is sized for the whole grid: the sub-grids draw Philox noise (the
    // same work per step).
    let inputs = RunInputs {
        noise: None,
        ..inputs.clone()
    };
    let run_ms = |steps: usize| -> Result<f64> {
        let sub = Grid {
            points: grid.points[..=steps].to_vec(),
            process: grid.process,
        };
        let t = Instant::now();
        run(
            backend,
            model,
            &sub,
            rule,
            &SamplerKind::Sequential,
            &inputs,
        )?;
        Ok(t.elapsed().as_secs_f64() * 1e3)
    };
    let short = run_ms(1)?.min(run_ms(1)?);
    let step = ((run_ms(1 + k)? - short) / k as f64).max(MIN_MS);
    Ok((step, (short - step).max(0.0)))
}

/// Wall time of a Picard run with `window` at τ = 0 capped at `iters` iterations (its result
/// unused).
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
        final_tol: None,
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
    use crate::backend::PicardForm;
    use crate::sampler::SamplerKind;
    use crate::schedule::StepRule;

    fn picard(window: usize, form: PicardForm, final_tol: Option<f64>) -> SamplerKind {
        let tol = if final_tol.is_some() { 0.0 } else { 0.1 };
        SamplerKind::picard(window, tol, form).with_final_tol(final_tol)
    }

    #[test]
    fn the_rounds_fit_bounds_the_measured_frontier() {
        let ddim = StepRule::Ddim { eta: 0.0 };
        let ddpm = StepRule::Ddim { eta: 1.0 };
        let dpm = StepRule::DpmSolverPP { order: 2 };
        // (steps, rule, rounds measured by the scan form at the default τ, frontier docs)
        for (n, rule, measured) in [
            (10, ddim, 10),
            (20, dpm, 14),
            (25, ddim, 19),
            (100, ddpm, 33),
            (1000, ddpm, 41),
        ] {
            let r = expected_rounds(n, &picard(256, PicardForm::Scan, None), rule);
            assert!(r >= measured && r <= n, "N {n}: {r} vs measured {measured}");
        }
        // The default where the window holds every step: drift at τ = 0, final_tol 1e-3
        // (the most rounds over the mixture, the MLP and the reach2d policy).
        for (n, rule, measured) in [
            (8, ddim, 8),
            (10, ddim, 9),
            (16, ddim, 10),
            (20, dpm, 11),
            (25, ddim, 11),
            (100, ddim, 12),
            (100, ddpm, 29),
        ] {
            let r = expected_rounds(n, &picard(n, PicardForm::Drift, Some(1e-3)), rule);
            assert!(r >= measured && r <= n, "N {n}: {r} vs measured {measured}");
        }
        // A window shorter than the grid slides: the per-step fit.
        let short = picard(256, PicardForm::Drift, Some(1e-3));
        assert_eq!(expected_rounds(1000, &short, ddpm), 43);
        assert_eq!(expected_rounds(1, &short, ddim), 1);
        assert_eq!(expected_rounds(0, &short, ddim), 0);
    }
}
