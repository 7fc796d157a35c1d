//! The Picard window's loop (the picard and blocks samplers): one batched model call and one fused
//! sweep and advance per iteration, host reads of the window state on a [`CheckSchedule`], the
//! blocks' corrector between blocks, and the refusals of an unconverged result.

use super::{Buffers, Run, RunStats, SamplerKind};
use crate::backend::{Backend, IterationRun, WindowPlan, WindowState};
use crate::error::{Error, Result};
use crate::model::ScoreModel;

use super::corrector::CorrectorRun;

/// When the host next reads the window state: after `max` iterations at most, sooner when the
/// window's progress so far says it will reach the end sooner, so that few iterations are enqueued
/// after convergence (each would be a whole wasted iteration on a device).
struct CheckSchedule {
    /// Iteration count at which to check next.
    next: usize,
    /// Iteration count and window start at the last check.
    last: (usize, usize),
}

impl CheckSchedule {
    fn new(first: usize) -> Self {
        CheckSchedule {
            next: first,
            last: (0, 0),
        }
    }

    /// Plans the next check after reading `start` at iteration count `launched`.
    fn update(&mut self, launched: usize, start: usize, steps: usize, max: usize) {
        let (iters, moved) = (
            launched.saturating_sub(self.last.0),
            start.saturating_sub(self.last.1),
        );
        let remaining = steps.saturating_sub(start);
        let wait = if moved == 0 || iters == 0 {
            max
        } else {
            // Iterations to the end at the rate seen since the last check, rounded up.
            (remaining * iters).div_ceil(moved).clamp(1, max)
        };
        self.last = (launched, start);
        self.next = launched + wait;
    }
}

/// Runs the window of `plan` to the last point; returns the ring slot holding the final samples.
pub(super) fn run_window<B: Backend, M: ScoreModel<B>>(
    run: &Run<'_, B, M>,
    plan: &WindowPlan,
    bufs: &mut Buffers<B, M>,
    stats: &mut RunStats,
) -> Result<usize> {
    let (backend, model, shape) = (run.backend, run.model, run.shape);
    let mut err = backend.alloc(backend.err_len(plan, shape))?;
    let mut window = backend.window_new(plan, run.tables, &mut bufs.times, shape)?;
    let max_interval = backend.sync_interval().max(1);
    let mut checks = CheckSchedule::new(max_interval.min(plan.max_iters));
    let mut launched = 0usize;
    let mut corrector = match run.kind {
        SamplerKind::Blocks {
            corrector: Some(c), ..
        } => Some(CorrectorRun::new(
            backend,
            model,
            *c,
            shape,
            run.grid,
            run.inputs.cond,
        )?),
        _ => None,
    };
    let recordable = model.recordable() && corrector.is_none();
    let (mut block, mut extra_rounds, mut extra_nfe) = (0, 0, 0);
    loop {
        let slots = backend.model_slots(&window, plan)?;
        let Buffers { x, out, times, ws } = &mut *bufs;
        // SAFETY: one window per run, and this closure is the only body passed for it: it
        // enqueues the same work on the same buffers (x, out, times, err, ws and the tables, all
        // made before the loop and dropped after the window) for the same slots, and keeps no
        // host-side state between calls that a replay would miss (the MLP swaps two scratch
        // buffers inside an evaluation, each written before it is read).
        let ran = unsafe {
            backend.iteration(&mut window, &slots, recordable, &mut |w| {
                for range in slots.iter().flatten() {
                    let rows = (range.start * shape.batch, range.len * shape.batch);
                    model.eval(backend, ws, x, times, rows.0, rows.1, out)?;
                }
                backend.picard_sweep(plan, run.tables, w, shape, x, out, run.noise, &mut err)?;
                backend.picard_advance(plan, run.tables, w, shape, x, times, &err)
            })
        }?;
        match ran {
            IterationRun::Eager => {}
            IterationRun::Recorded => stats.recorded += 1,
            IterationRun::Replayed => stats.replayed += 1,
        }
        launched += 1;
        if corrector.is_none() && launched < checks.next && launched < plan.max_iters {
            continue;
        }
        stats.host_syncs += 1;
        let st = backend.window_read(&window)?;
        checks.update(launched, st.start, plan.steps, max_interval);
        run.report(st.start, launched);
        if let Some(c) = corrector.as_mut().filter(|_| st.block > block) {
            block = st.block;
            let calls = correct_block(run, plan, c, &st, &mut bufs.x)?;
            extra_rounds += calls;
            extra_nfe += calls * c.steps();
        }
        if st.done(plan) {
            finish(run, plan, &st, (extra_rounds, extra_nfe), stats)?;
            return Ok(plan.steps % plan.ring());
        }
        if launched >= plan.max_iters {
            return Err(Error::NotConverged {
                iters: plan.max_iters,
                step: st.start,
            });
        }
    }
}

/// The blocks' corrector after a block ended at point `st.start`: corrects that point and the new
/// block's slots (which the advance initialised with the uncorrected state); returns the corrector's
/// sequential model calls.
fn correct_block<B: Backend, M: ScoreModel<B>>(
    run: &Run<'_, B, M>,
    plan: &WindowPlan,
    c: &mut CorrectorRun<B, M::Workspace>,
    st: &WindowState,
    x: &mut B::Buf,
) -> Result<usize> {
    let (backend, shape) = (run.backend, run.shape);
    let (r, slot) = (plan.ring(), shape.slot_len());
    let point = run.grid.points[st.start];
    let (seed, sample0) = (run.inputs.seed, run.inputs.sample0);
    let off = (st.start % r) * slot;
    let calls = c.apply(backend, run.model, point, shape, seed, sample0, x, off)?;
    for m in st.start + 1..=st.end {
        c.write_result(backend, x, (m % r) * slot, shape)?;
    }
    Ok(calls)
}

/// The finished window's statistics (with the corrector's `extra` rounds and evaluations), or the
/// refusal of a blocks result one of whose blocks ended above τ > 0 (which spoils every later
/// block). Checked at the end, where every backend has seen every block, so that a non-finite
/// value found later is reported as such.
fn finish<B: Backend, M: ScoreModel<B>>(
    run: &Run<'_, B, M>,
    plan: &WindowPlan,
    st: &WindowState,
    extra: (usize, usize),
    stats: &mut RunStats,
) -> Result<()> {
    if let (Some(u), SamplerKind::Blocks { tol, iters, .. }) = (st.unconverged, run.kind) {
        if *tol > 0.0 {
            return Err(Error::BlockNotConverged {
                block: u.block,
                end: u.end,
                residual: (u.err as f64).sqrt(),
                tol: *tol,
                iters: *iters,
            });
        }
    }
    stats.rounds = st.iters + extra.0;
    stats.nfe = st.nfe + extra.1;
    stats.worst_block_residual = (st.worst_block_err as f64).sqrt();
    stats.final_change = plan
        .final_stop
        .map(|f| (st.final_err as f64 * f.var as f64).sqrt());
    stats.final_stopped = st.final_stopped;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::CheckSchedule;

    /// The next check is at most `max` iterations away and at least one; with steady progress it
    /// lands on the iteration that reaches the end, so no iteration is enqueued after convergence.
    #[test]
    fn checks_land_on_the_predicted_end() {
        let (steps, max) = (1000, 8);
        let mut c = CheckSchedule::new(max);
        assert_eq!(c.next, 8);
        // 27 points per iteration: after 8 iterations the window starts at 216.
        c.update(8, 216, steps, max);
        assert_eq!(c.next, 16, "far from the end: the full interval");
        c.update(32, 864, steps, max);
        // 136 points left at 27 per iteration: 5.04 -> 6 more iterations.
        assert_eq!(c.next, 38);
        c.update(38, 990, steps, max);
        assert_eq!(c.next, 39, "at least one iteration");
        // No progress since the last check: wait the full interval.
        c.update(40, 990, steps, max);
        assert_eq!(c.next, 48);
        // A simulated run at a steady rate checks exactly at the last iteration.
        let mut c = CheckSchedule::new(max);
        let (rate, mut launched, mut start) = (23usize, 0usize, 0usize);
        let mut checks = 0;
        while start < steps {
            launched += 1;
            start = (start + rate).min(steps);
            if launched >= c.next {
                checks += 1;
                c.update(launched, start, steps, max);
            }
            assert!(c.next > launched && c.next <= launched + max);
        }
        assert_eq!(launched, steps.div_ceil(rate));
        assert_eq!(c.last.0, launched, "the last check saw the end");
        assert!(checks <= launched.div_ceil(max) + 1, "{checks} checks");
    }
}
