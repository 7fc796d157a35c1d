//! Time grids: the decreasing list of times `t_0 = T > … > t_N` a sampler walks, with α and σ at each.

use super::Schedule;
use crate::error::{Error, Result};

/// The largest grid a continuous schedule builds (10^7 steps).
pub const MAX_STEPS: usize = 10_000_000;

/// One point of a grid.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GridPoint {
    /// The time passed to the model (a timestep index for discrete schedules; −1 marks the clean end).
    pub t: f64,
    /// α at this point.
    pub alpha: f64,
    /// σ at this point.
    pub sigma: f64,
}

/// diffusers' spacing of a discrete timestep subset (`DDIMScheduler.set_timesteps`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spacing {
    /// `arange(0, N) · (N_train // N)`, reversed (diffusers' default).
    Leading,
    /// `round(arange(N_train, 0, −N_train/N)) − 1`.
    Trailing,
    /// `round(linspace(0, N_train − 1, N))`, reversed.
    Linspace,
}

impl std::str::FromStr for Spacing {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "leading" => Ok(Spacing::Leading),
            "trailing" => Ok(Spacing::Trailing),
            "linspace" => Ok(Spacing::Linspace),
            o => Err(Error::config(
                "spacing",
                format!("unknown spacing `{o}` (expected leading, trailing or linspace)"),
            )),
        }
    }
}

/// The decreasing discrete timesteps of `steps` inference steps out of `n_train`, with diffusers'
/// formulas (steps_offset = 0, numpy's round-half-to-even).
pub fn discrete_timesteps(n_train: usize, steps: usize, spacing: Spacing) -> Result<Vec<usize>> {
    if steps == 0 || steps > n_train {
        return Err(Error::config(
            "steps",
            format!("must be in 1..={n_train} for a discrete schedule, got {steps}"),
        ));
    }
    let ts: Vec<i64> = match spacing {
        Spacing::Leading => {
            let ratio = (n_train / steps) as i64;
            (0..steps as i64).rev().map(|i| i * ratio).collect()
        }
        Spacing::Trailing => {
            let ratio = n_train as f64 / steps as f64;
            (0..steps)
                .map(|i| (n_train as f64 - i as f64 * ratio).round_ties_even() as i64 - 1)
                .collect()
        }
        Spacing::Linspace => {
            let last = (n_train - 1) as f64;
            let div = (steps.max(2) - 1) as f64;
            let mut v: Vec<i64> = (0..steps)
                .map(|i| {
                    if steps == 1 {
                        0
                    } else {
                        (last * i as f64 / div).round_ties_even() as i64
                    }
                })
                .collect();
            v.reverse();
            v
        }
    };
    if ts.windows(2).any(|w| w[0] <= w[1]) || ts.iter().any(|&t| t < 0 || t >= n_train as i64) {
        return Err(Error::config(
            "steps",
            format!("{steps} steps with {spacing:?} spacing do not give distinct timesteps"),
        ));
    }
    Ok(ts.into_iter().map(|t| t as usize).collect())
}

/// A decreasing grid of N + 1 points; step j maps point j to point j + 1.
#[derive(Debug, Clone, PartialEq)]
pub struct Grid {
    /// The points, noise end first.
    pub points: Vec<GridPoint>,
}

impl Grid {
    /// Number of steps N (points − 1).
    pub fn steps(&self) -> usize {
        self.points.len() - 1
    }

    fn from_times(schedule: &Schedule, times: impl IntoIterator<Item = f64>) -> Self {
        let points = times
            .into_iter()
            .map(|t| {
                let (alpha, sigma) = schedule.alpha_sigma(t);
                GridPoint { t, alpha, sigma }
            })
            .collect();
        Grid { points }
    }

    /// A discrete grid: the chosen timesteps, then the clean end (t = −1, α = 1, σ = 0), as diffusers'
    /// schedulers do with `set_alpha_to_one` / `alpha_prod_t_prev = 1`.
    pub fn discrete(schedule: &Schedule, steps: usize, spacing: Spacing) -> Result<Self> {
        let Schedule::Discrete { alphas_cumprod, .. } = schedule else {
            return Err(Error::config(
                "grid",
                format!(
                    "schedule `{}` is continuous: use the uniform or paper grid",
                    schedule.name()
                ),
            ));
        };
        let ts = discrete_timesteps(alphas_cumprod.len(), steps, spacing)?;
        Ok(Self::from_times(
            schedule,
            ts.into_iter().map(|t| t as f64).chain([-1.0]),
        ))
    }

    /// `steps` uniform steps from `horizon` down to `t_end` in continuous time.
    pub fn uniform(schedule: &Schedule, steps: usize, horizon: f64, t_end: f64) -> Result<Self> {
        check_continuous(schedule, horizon, t_end)?;
        if steps == 0 || steps > MAX_STEPS {
            return Err(Error::config(
                "steps",
                format!("must be in 1..={MAX_STEPS}, got {steps}"),
            ));
        }
        let h = (horizon - t_end) / steps as f64;
        Ok(Self::from_times(
            schedule,
            (0..=steps).map(|j| {
                if j == steps {
                    t_end
                } else {
                    horizon - j as f64 * h
                }
            }),
        ))
    }

    /// The seed paper's grid: uniform steps of size κ while t ≥ 1, then geometric steps
    /// `t/(1 + κ)` down to `t_end`, the last step landing exactly on `t_end`.
    pub fn paper(schedule: &Schedule, kappa: f64, horizon: f64, t_end: f64) -> Result<Self> {
        check_continuous(schedule, horizon, t_end)?;
        if !(kappa > 0.0 && kappa.is_finite()) {
            return Err(Error::config(
                "kappa",
                format!("must be positive, got {kappa}"),
            ));
        }
        let eps = 1e-9;
        let mut times = vec![horizon];
        let mut j = 1;
        // Size before building: the uniform part's steps plus the geometric part's.
        let knee = horizon.min(1.0).max(t_end);
        let estimate = (horizon - knee) / kappa + (knee / t_end).ln() / kappa.ln_1p() + 2.0;
        if estimate > MAX_STEPS as f64 {
            return Err(Error::config(
                "kappa",
                format!("the paper grid would have about {estimate:.3e} steps (limit {MAX_STEPS})"),
            ));
        }
        while horizon - j as f64 * kappa >= 1.0 - eps
            && horizon - j as f64 * kappa > t_end * (1.0 + eps)
        {
            times.push(horizon - j as f64 * kappa);
            j += 1;
        }
        let mut t = *times.last().unwrap();
        while t / (1.0 + kappa) > t_end * (1.0 + eps) {
            t /= 1.0 + kappa;
            times.push(t);
        }
        times.push(t_end);
        Ok(Self::from_times(schedule, times))
    }
}

fn check_continuous(schedule: &Schedule, horizon: f64, t_end: f64) -> Result<()> {
    if schedule.is_discrete() {
        return Err(Error::config(
            "grid",
            format!("schedule `{}` is discrete: use --spacing", schedule.name()),
        ));
    }
    if !(t_end > 0.0 && t_end.is_finite()) {
        return Err(Error::config(
            "t-end",
            format!("the early-stopping time must be > 0, got {t_end}"),
        ));
    }
    if !(horizon > t_end && horizon.is_finite()) {
        return Err(Error::config(
            "horizon",
            format!("must be finite and > t-end ({t_end}), got {horizon}"),
        ));
    }
    if matches!(schedule, Schedule::VpLinear { .. }) && horizon > 1.0 {
        return Err(Error::config(
            "horizon",
            format!("vp-linear is defined on [0, 1], got {horizon}"),
        ));
    }
    Ok(())
}
