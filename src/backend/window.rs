//! The Picard window: its plan (sizes, mode, tolerance) and its state machine. The CPU backend runs
//! [`WindowState::advance`] on the host; the CUDA backend runs the same rules in a one-thread kernel
//! (`kernels/picard.cu`, `picard_advance`), so keep the two in step.

use super::{ring_ranges, PicardForm, SlotRange};
use crate::error::{Error, Result};
use crate::Field;

/// How the window moves (`docs/algorithms.md` §3–4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WindowMode {
    /// ParaDiGMS' sliding window: the start moves to the first point whose error exceeds τ.
    Sliding,
    /// The seed paper's blocks: a fixed window per block, `iters` iterations (or until every point
    /// is within τ), then the next block.
    Blocks {
        /// End point of each block, increasing, the last one = steps.
        ends: Vec<usize>,
        /// Picard iterations per block (K).
        iters: usize,
    },
}

/// Everything a backend needs to size and run the window; computed once per run.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowPlan {
    /// Grid steps N.
    pub steps: usize,
    /// Window length p (points updated per iteration); the ring holds p + 1 slots.
    pub window: usize,
    /// Sliding window or blocks.
    pub mode: WindowMode,
    /// Squared tolerance τ².
    pub tol2: f32,
    /// Scan or drift form.
    pub form: PicardForm,
    /// Iteration cap; reaching it before the end is an error.
    pub max_iters: usize,
    /// Anderson acceleration's history m (iterates kept per point, the current one included;
    /// `docs/algorithms.md` §11), or None: the plain Picard update.
    pub anderson: Option<usize>,
    /// The final-sample stop ([`WindowPlan::with_final_stop`]), or None: only the per-point test.
    pub final_stop: Option<FinalStop>,
}

/// The final-sample stop (`docs/algorithms.md` §3): the run ends once the last point's RMS change
/// per element in one iteration, for every sample, is at most `tol` in the samples' own units,
/// counted only from the second iteration that sweeps the last point (the first one's change is
/// from an initial guess, not from an earlier iterate).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FinalStop {
    /// The tolerance on the RMS change, in data units.
    pub tol: f64,
    /// The error normaliser v_N of the last point (the table's `var[N − 1]`).
    pub var: f32,
    /// `tol² / var`: the bound on the last point's normalised error (the units of τ²).
    pub tol2: f32,
}

impl FinalStop {
    /// Checks a final-stop tolerance: positive and finite (a stop is an approximation by design;
    /// τ = 0 alone is the exact run).
    pub fn check_tol(tol: f64) -> Result<()> {
        if tol > 0.0 && tol.is_finite() {
            return Ok(());
        }
        Err(Error::config(
            Field::FinalTol,
            format!(
                "must be positive and finite, got {tol} (tol 0 gives the exact sequential result)"
            ),
        ))
    }
}

/// The Anderson histories allowed ([`WindowPlan::with_anderson`]).
pub const ANDERSON_HISTORY: std::ops::RangeInclusive<usize> = 2..=5;

impl WindowPlan {
    /// A sliding-window plan. `window` is clamped to `steps`.
    pub fn sliding(
        steps: usize,
        window: usize,
        tol: f64,
        form: PicardForm,
        max_iters: Option<usize>,
    ) -> Result<Self> {
        check_common(steps, tol)?;
        if window == 0 {
            return Err(Error::config(Field::Window, "must be at least 1"));
        }
        let window = window.min(steps);
        Ok(WindowPlan {
            steps,
            window,
            mode: WindowMode::Sliding,
            tol2: (tol * tol) as f32,
            form,
            max_iters: max_iters.unwrap_or(steps),
            anderson: None,
            final_stop: None,
        })
    }

    /// A block plan from block end points (increasing, ending at `steps`) and K iterations per block.
    pub fn blocks(
        steps: usize,
        ends: Vec<usize>,
        iters: usize,
        tol: f64,
        form: PicardForm,
    ) -> Result<Self> {
        check_common(steps, tol)?;
        if iters == 0 {
            return Err(Error::config(Field::Iters, "must be at least 1"));
        }
        let mut prev = 0;
        for &e in &ends {
            if e <= prev || e > steps {
                return Err(Error::config(
                    Field::BlockLen,
                    format!("block ends {ends:?} must increase within 1..={steps}"),
                ));
            }
            prev = e;
        }
        if prev != steps {
            return Err(Error::config(
                Field::BlockLen,
                "the last block must end at the last step",
            ));
        }
        let mut window = 0;
        let mut s = 0;
        for &e in &ends {
            window = window.max(e - s);
            s = e;
        }
        // Saturating: a huge K (fixed-K mode) must not overflow; every block still ends.
        let max_iters = ends.len().saturating_mul(iters);
        Ok(WindowPlan {
            steps,
            window,
            mode: WindowMode::Blocks { ends, iters },
            tol2: (tol * tol) as f32,
            form,
            max_iters,
            anderson: None,
            final_stop: None,
        })
    }

    /// This plan with Anderson acceleration of history `m` (2 to 5; None: off).
    pub fn with_anderson(mut self, m: Option<usize>) -> Result<Self> {
        if let Some(m) = m {
            if !ANDERSON_HISTORY.contains(&m) {
                return Err(Error::config(
                    Field::Anderson,
                    format!(
                        "the history must be {} to {}, got {m}",
                        ANDERSON_HISTORY.start(),
                        ANDERSON_HISTORY.end()
                    ),
                ));
            }
        }
        self.anderson = m;
        Ok(self)
    }

    /// This plan with the final-sample stop at RMS change `tol` (None: off); `var` is the last
    /// point's error normaliser (the step table's `var[N − 1]`, positive). `tol` must be positive
    /// and finite: a run that stops on it is close to the sequential one, never equal by design
    /// (a τ = 0 run is the exact one).
    pub fn with_final_stop(mut self, tol: Option<f64>, var: f32) -> Result<Self> {
        self.final_stop = match tol {
            None => None,
            Some(tol) => {
                FinalStop::check_tol(tol)?;
                if !(var > 0.0 && var.is_finite()) {
                    return Err(Error::shape(
                        "final stop",
                        format!("the last point's normaliser must be positive, got {var}"),
                    ));
                }
                let tol2 = ((tol * tol) / var as f64) as f32;
                Some(FinalStop { tol, var, tol2 })
            }
        };
        Ok(self)
    }

    /// Slots in the ring (p + 1).
    pub fn ring(&self) -> usize {
        self.window + 1
    }

    /// The first window's state.
    pub fn initial_state(&self) -> WindowState {
        let end = match &self.mode {
            WindowMode::Sliding => self.window.min(self.steps),
            WindowMode::Blocks { ends, .. } => ends[0],
        };
        WindowState {
            start: 0,
            end,
            iters: 0,
            nfe: 0,
            block: 0,
            block_iters: 0,
            worst_block_err: 0.0,
            unconverged: None,
            final_sweeps: 0,
            final_err: 0.0,
            final_stopped: false,
        }
    }
}

fn check_common(steps: usize, tol: f64) -> Result<()> {
    if steps == 0 {
        return Err(Error::config(Field::Steps, "must be at least 1"));
    }
    if !(tol >= 0.0 && tol.is_finite()) {
        return Err(Error::config(
            Field::Tol,
            format!("must be finite and >= 0, got {tol}"),
        ));
    }
    Ok(())
}

/// Ring slots that cover the model points of every window whose start is at least `known_start`
/// (a start read earlier; it only grows): the points from `known_start`, rounded down to a 32nd of
/// the ring so that small moves keep the same slots, to the last step when they fit in the ring,
/// else the whole ring. Backends that keep the window on the device evaluate these.
pub fn covering_slots(plan: &WindowPlan, known_start: usize) -> [Option<SlotRange>; 2] {
    let r = plan.ring();
    let quantum = (r / 32).max(1);
    let lo = known_start / quantum * quantum;
    if lo >= plan.steps {
        [None, None]
    } else if plan.steps - lo <= r {
        ring_ranges(r, lo, plan.steps - lo)
    } else {
        ring_ranges(r, 0, r)
    }
}

/// A block that ended after its K iterations with a point error above τ² (blocks mode).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct UnconvergedBlock {
    /// The block's index (0 = the first block).
    pub block: usize,
    /// The block's end point.
    pub end: usize,
    /// The block's residual: the worst point error of its last iteration (normalised and squared,
    /// as compared with τ²) over its points but the last (the points the convergence test reads:
    /// the last point is made from them).
    pub err: f32,
}

/// The window's position and counters.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct WindowState {
    /// First point of the window (exact).
    pub start: usize,
    /// Last point of the window.
    pub end: usize,
    /// Picard iterations so far (= sequential model calls, the "rounds").
    pub iters: usize,
    /// Model evaluations per sample so far (Σ window lengths).
    pub nfe: usize,
    /// Current block (blocks mode).
    pub block: usize,
    /// Iterations spent in the current block.
    pub block_iters: usize,
    /// Blocks mode: the largest residual of any block that has ended ([`UnconvergedBlock::err`]:
    /// normalised and squared as compared with τ²); 0 otherwise.
    pub worst_block_err: f32,
    /// Blocks mode: the first block that ended after K iterations with a point error above τ²
    /// (with τ = 0, every block that did not converge exactly). The sampler makes it an error
    /// for τ > 0.
    pub unconverged: Option<UnconvergedBlock>,
    /// Iterations whose window held the last point N.
    pub final_sweeps: usize,
    /// The last point's normalised error (the max over the batch) in the latest of those.
    pub final_err: f32,
    /// Whether the final-sample stop ended the run before the per-point test accepted every point.
    pub final_stopped: bool,
}

impl WindowState {
    /// True once every step has been accepted.
    pub fn done(&self, plan: &WindowPlan) -> bool {
        self.start >= plan.steps
    }

    /// Whether `other` is this state up to the rounding of the block residuals: every position,
    /// counter and unconverged block equal, the residuals (and the last point's error) within a
    /// relative `rel`. Backends sum
    /// the point errors in different orders, so they agree on which points pass τ² (the tests that
    /// compare them avoid ties) but on the residuals' values only to float rounding.
    pub fn matches(&self, other: &WindowState, rel: f32) -> bool {
        let close = |a: f32, b: f32| a == b || (a - b).abs() <= rel * a.abs().max(b.abs());
        let zero = |w: &WindowState| WindowState {
            worst_block_err: 0.0,
            final_err: 0.0,
            unconverged: w.unconverged.map(|u| UnconvergedBlock { err: 0.0, ..u }),
            ..*w
        };
        let errs = |w: &WindowState| w.unconverged.map_or(0.0, |u| u.err);
        zero(self) == zero(other)
            && close(self.worst_block_err, other.worst_block_err)
            && close(errs(self), errs(other))
            && close(self.final_err, other.final_err)
    }

    /// The first point in s+1..=e whose error is above τ² (`max_err` as for [`Self::advance`]),
    /// or e if none: the frontier of the iteration.
    pub fn first_fail(&self, plan: &WindowPlan, max_err: impl Fn(usize) -> f32) -> usize {
        let (s, e) = (self.start, self.end);
        (0..e - s)
            .find(|&k| max_err(k) > plan.tol2)
            .map_or(e, |k| s + 1 + k)
    }

    /// Applies one iteration's outcome. `max_err(k)` is the largest normalised error over the batch of
    /// point `start + 1 + k`, k = 0..end−start. Returns the old end (new slots are those after it).
    pub fn advance(&mut self, plan: &WindowPlan, max_err: impl Fn(usize) -> f32) -> usize {
        let (s, e) = (self.start, self.end);
        if s >= plan.steps {
            return e;
        }
        let mut first_fail = self.first_fail(plan, &max_err);
        if e == plan.steps {
            self.final_sweeps += 1;
            self.final_err = max_err(e - s - 1);
            let met = plan
                .final_stop
                .is_some_and(|f| self.final_sweeps >= 2 && self.final_err <= f.tol2);
            if met && first_fail != e {
                // Every point is accepted: the final samples have settled (§3, final stop).
                self.final_stopped = true;
                first_fail = e;
            }
        }
        self.iters += 1;
        self.nfe += e - s;
        match &plan.mode {
            WindowMode::Sliding => {
                self.start = first_fail;
                self.end = (first_fail + plan.window).min(plan.steps);
            }
            WindowMode::Blocks { ends, iters } => {
                self.block_iters += 1;
                if first_fail == e || self.block_iters >= *iters {
                    // The block ends. Its residual is the worst error of this iteration over the
                    // points s+1..e−1 that the acceptance test above looks at: the last point was
                    // made from them, so it is as good as they are, whatever its own change.
                    let resid = (0..e - s - 1).map(&max_err).fold(0f32, f32::max);
                    self.worst_block_err = self.worst_block_err.max(resid);
                    if first_fail != e && self.unconverged.is_none() {
                        self.unconverged = Some(UnconvergedBlock {
                            block: self.block,
                            end: e,
                            err: resid,
                        });
                    }
                    self.start = e;
                    self.block += 1;
                    self.block_iters = 0;
                    self.end = ends.get(self.block).copied().unwrap_or(e);
                }
            }
        }
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The final-sample stop: not on the first sweep of the last point (its change is from a
    /// guess), then at the first error at most its bound, accepting every point; a run the
    /// per-point test ends is not flagged; in blocks mode it ends only the last block, converged.
    #[test]
    fn final_stop_needs_a_second_sweep_and_accepts_the_window() {
        let var = 0.25f32;
        let plan = WindowPlan::sliding(10, 10, 1e-3, PicardForm::Scan, None)
            .unwrap()
            .with_final_stop(Some(0.1), var)
            .unwrap();
        let bound = plan.final_stop.unwrap().tol2;
        assert!((bound - 0.01 / var).abs() < 1e-6);
        // Every point fails τ; the last one's error (point 10 = start + 1 + k) is below the bound.
        let err = |start: usize| {
            move |k: usize| {
                if start + 1 + k == 10 {
                    bound * 0.5
                } else {
                    1.0
                }
            }
        };
        let mut st = plan.initial_state();
        st.advance(&plan, err(0));
        assert_eq!((st.start, st.final_sweeps, st.final_stopped), (1, 1, false));
        st.advance(&plan, err(1));
        assert_eq!((st.start, st.final_sweeps, st.final_stopped), (10, 2, true));
        assert!(st.done(&plan) && st.iters == 2 && st.final_err == bound * 0.5);
        // Above the bound: the window moves by the per-point test only.
        let mut st = plan.initial_state();
        for _ in 0..3 {
            st.advance(&plan, |_| bound * 2.0);
        }
        assert_eq!((st.start, st.final_stopped), (3, false));
        // The per-point test accepts everything: done, not flagged.
        let mut st = plan.initial_state();
        st.advance(&plan, |_| 0.0);
        st.advance(&plan, |_| 0.0);
        assert!(st.done(&plan) && !st.final_stopped);
        // Blocks: the first block ignores the stop, the last one ends converged on it.
        let plan = WindowPlan::blocks(10, vec![4, 10], 100, 1e-3, PicardForm::Scan)
            .unwrap()
            .with_final_stop(Some(0.1), var)
            .unwrap();
        let mut st = plan.initial_state();
        let low = |_: usize| bound * 0.5;
        st.advance(&plan, low);
        st.advance(&plan, low);
        assert_eq!((st.block, st.start, st.final_sweeps), (0, 0, 0));
        st.advance(&plan, |_| 0.0); // the first block converges on τ
        assert_eq!((st.block, st.start, st.end), (1, 4, 10));
        st.advance(&plan, low);
        assert!(!st.done(&plan));
        st.advance(&plan, low);
        assert!(st.done(&plan) && st.final_stopped && st.unconverged.is_none());
    }

    /// The stop's tolerance must be positive and finite, the normaliser positive.
    #[test]
    fn final_stop_refuses_bad_tolerances() {
        let plan = WindowPlan::sliding(10, 10, 1e-3, PicardForm::Scan, None).unwrap();
        for bad in [0.0, -1e-3, f64::NAN, f64::INFINITY] {
            let e = plan.clone().with_final_stop(Some(bad), 1.0).unwrap_err();
            assert!(e.to_string().contains("final_tol"), "{e}");
        }
        assert!(plan.clone().with_final_stop(Some(1e-3), 0.0).is_err());
        assert_eq!(plan.with_final_stop(None, 0.0).unwrap().final_stop, None);
    }

    /// Every model point of every later window (start ≥ the known start) lies in a covering slot,
    /// for sliding windows shorter than, equal to and wrapping around the ring.
    #[test]
    fn covering_slots_cover_every_later_window() {
        for (steps, window) in [(1000, 1000), (1000, 64), (50, 7), (5, 1), (333, 332)] {
            let plan = WindowPlan::sliding(steps, window, 0.1, PicardForm::Scan, None).unwrap();
            let r = plan.ring();
            for known in 0..steps {
                let slots = covering_slots(&plan, known);
                let covered = |slot: usize| {
                    slots
                        .iter()
                        .flatten()
                        .any(|s| slot >= s.start && slot < s.start + s.len)
                };
                for start in known..steps {
                    let end = (start + plan.window).min(steps);
                    for m in start..end {
                        assert!(
                            covered(m % r),
                            "steps {steps} p {window} known {known} point {m}"
                        );
                    }
                }
                let rows: usize = slots.iter().flatten().map(|s| s.len).sum();
                assert!(rows <= r);
                if steps - known + r / 32 < r {
                    assert!(rows < r, "the slots shrink once the rest fits in the ring");
                }
            }
        }
    }
}
