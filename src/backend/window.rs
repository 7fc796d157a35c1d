//! The Picard window: its plan (sizes, mode, tolerance) and its state machine. The CPU backend runs
//! [`WindowState::advance`] on the host; the CUDA backend runs the same rules in a one-thread kernel
//! (`kernels/picard.cu`, `picard_advance`), so keep the two in step.

use super::PicardForm;
use crate::error::{Error, Result};

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
}

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
            return Err(Error::config("window", "must be at least 1"));
        }
        let window = window.min(steps);
        Ok(WindowPlan {
            steps,
            window,
            mode: WindowMode::Sliding,
            tol2: (tol * tol) as f32,
            form,
            max_iters: max_iters.unwrap_or(steps),
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
            return Err(Error::config("iters", "must be at least 1"));
        }
        let mut prev = 0;
        for &e in &ends {
            if e <= prev || e > steps {
                return Err(Error::config(
                    "block-len",
                    format!("block ends {ends:?} must increase within 1..={steps}"),
                ));
            }
            prev = e;
        }
        if prev != steps {
            return Err(Error::config(
                "block-len",
                "the last block must end at the last step",
            ));
        }
        let mut window = 0;
        let mut s = 0;
        for &e in &ends {
            window = window.max(e - s);
            s = e;
        }
        let max_iters = ends.len() * iters;
        Ok(WindowPlan {
            steps,
            window,
            mode: WindowMode::Blocks { ends, iters },
            tol2: (tol * tol) as f32,
            form,
            max_iters,
        })
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
        }
    }
}

fn check_common(steps: usize, tol: f64) -> Result<()> {
    if steps == 0 {
        return Err(Error::config("steps", "must be at least 1"));
    }
    if tol.is_nan() || tol < 0.0 {
        return Err(Error::config("tol", format!("must be >= 0, got {tol}")));
    }
    Ok(())
}

/// The window's position and counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
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
}

impl WindowState {
    /// True once every step has been accepted.
    pub fn done(&self, plan: &WindowPlan) -> bool {
        self.start >= plan.steps
    }

    /// Applies one iteration's outcome. `max_err(k)` is the largest normalised error over the batch of
    /// point `start + 1 + k`, k = 0..end−start. Returns the old end (new slots are those after it).
    pub fn advance(&mut self, plan: &WindowPlan, max_err: impl Fn(usize) -> f32) -> usize {
        let (s, e) = (self.start, self.end);
        if s >= plan.steps {
            return e;
        }
        let first_fail = (0..e - s)
            .find(|&k| max_err(k) > plan.tol2)
            .map_or(e, |k| s + 1 + k);
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
