//! One safe wrapper per kernel launcher of `kernels/picardiff_kernels.h`. Each wrapper checks that
//! every buffer belongs to the backend and is long enough for what the kernel touches, converts sizes
//! to the C types without truncation, makes the context current and enqueues the launch on the
//! backend's stream. Kernels then access only the checked ranges.

use cudarc::driver::CudaSlice;

use super::backend::{CudaSeq, CudaWindow};
use super::tables::{CudaTables, COEF_ROW};
use super::{check, ffi, CudaBackend};
use crate::backend::{LangevinSweep, Noise, PicardForm, Shape, WindowMode, WindowPlan};
use crate::error::{Error, Result};
use crate::types::Activation;

/// Which Picard sweep kernel the launches of the current thread use (see `PICARDIFF_SWEEP_*` in
/// `kernels/picardiff_kernels.h`). A measurement and test switch, compiled in only with the
/// `bench-internals` feature (this package's tests and benches): the library always runs
/// [`SweepPath::Auto`].
#[cfg(feature = "bench-internals")]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SweepPath {
    /// The serial kernel for large `batch × dim`, the window-parallel scan for small ones
    /// (`batch × dim < 2^16` and `window ≥ 16`).
    #[default]
    Auto,
    /// One thread per (sample, 4 elements) over the whole window: bit-identical to the CPU backend.
    Serial,
    /// Window-parallel chunked scan: equal to the CPU up to rounding (~1e-6 relative).
    Scan,
}

#[cfg(feature = "bench-internals")]
thread_local! {
    static SWEEP_PATH: std::cell::Cell<SweepPath> = const { std::cell::Cell::new(SweepPath::Auto) };
}

/// Forces the Picard sweep kernel for the CUDA launches made by the calling thread (tests and
/// benches); returns the previous choice. The default is [`SweepPath::Auto`].
#[cfg(feature = "bench-internals")]
pub fn set_sweep_path(path: SweepPath) -> SweepPath {
    SWEEP_PATH.with(|c| c.replace(path))
}

/// The `PICARDIFF_SWEEP_*` of this thread's launches.
#[cfg(feature = "bench-internals")]
fn sweep_path() -> u32 {
    match SWEEP_PATH.with(|c| c.get()) {
        SweepPath::Auto => ffi::PICARDIFF_SWEEP_AUTO,
        SweepPath::Serial => ffi::PICARDIFF_SWEEP_SERIAL,
        SweepPath::Scan => ffi::PICARDIFF_SWEEP_SCAN,
    }
}

/// The `PICARDIFF_SWEEP_*` of every launch: the kernel's own choice.
#[cfg(not(feature = "bench-internals"))]
fn sweep_path() -> u32 {
    ffi::PICARDIFF_SWEEP_AUTO
}

/// The device address of element `off` of a buffer starting at `base`.
fn at(base: u64, off: usize) -> *mut f32 {
    (base + (off as u64) * 4) as *mut f32
}

/// `v` as a C `int`, or a device error naming `what` (a size past the kernels' 32-bit indices).
pub(super) fn c_int(v: usize, what: &str) -> Result<i32> {
    i32::try_from(v).map_err(|_| too_large(what, v, i32::MAX as u64))
}

/// `v` as a C `long`, or a device error naming `what`.
pub(super) fn c_long(v: usize, what: &str) -> Result<i64> {
    i64::try_from(v).map_err(|_| too_large(what, v, i64::MAX as u64))
}

/// The error for a size `what` = `v` past the CUDA backend's `limit`.
pub(super) fn too_large(what: &str, v: usize, limit: u64) -> Error {
    Error::device(
        "a CUDA launch",
        format!("{what} {v} exceeds the CUDA backend's limit of {limit}"),
    )
}

impl CudaBackend {
    pub(super) fn cu_stream(&self) -> ffi::cudaStream_t {
        self.stream.cu_stream() as ffi::cudaStream_t
    }

    fn tables_raw(&self, t: &CudaTables, need: usize, op: &str) -> Result<ffi::PicardTables> {
        let p = |b: &CudaSlice<f32>, n| self.ptr(b, n, op, "step table").map(|p| p as *const f32);
        Ok(ffi::PicardTables {
            coef: p(&t.coef, need * COEF_ROW)?,
            t: p(&t.t, need)?,
            var: p(&t.var, need)?,
            clip_range: t.clip_range,
            hist_coef: match &t.hist_coef {
                Some(h) => p(h, 2 * need)?,
                None => std::ptr::null(),
            },
            history: c_int(t.history, "multistep history")?,
        })
    }

    fn noise_raw(
        &self,
        noise: Noise<'_, Self>,
        steps: usize,
        shape: Shape,
        op: &str,
    ) -> Result<ffi::PicardNoise> {
        Ok(match noise {
            Noise::Philox { seed, sample0 } => ffi::PicardNoise {
                seed,
                sample0,
                table: std::ptr::null(),
            },
            Noise::Table(t) => ffi::PicardNoise {
                seed: 0,
                sample0: 0,
                table: self.ptr(
                    t,
                    steps * shape.slot_len(),
                    op,
                    "noise table [steps][batch][dim]",
                )? as *const f32,
            },
        })
    }

    /// The fused-Picard parameters with the given device buffers (null where a kernel needs none).
    fn picard_params(
        &self,
        plan: &WindowPlan,
        tables: &CudaTables,
        window: &CudaWindow,
        shape: Shape,
        op: &str,
    ) -> Result<ffi::PicardParams> {
        if tables.steps != plan.steps {
            return Err(Error::shape(
                op,
                format!(
                    "step table has {} steps, the plan {}",
                    tables.steps, plan.steps
                ),
            ));
        }
        let (mode, num_blocks, block_iters) = match &plan.mode {
            WindowMode::Sliding => (ffi::PICARDIFF_MODE_SLIDING, 0, 0),
            WindowMode::Blocks { ends, iters } => (ffi::PICARDIFF_MODE_BLOCKS, ends.len(), *iters),
        };
        if num_blocks != window.num_blocks {
            return Err(Error::shape(op, "the window was created for another plan"));
        }
        Ok(ffi::PicardParams {
            x: std::ptr::null_mut(),
            out: std::ptr::null(),
            times: std::ptr::null_mut(),
            partial: std::ptr::null_mut(),
            win: self.ptr(&window.state, 1, op, "window state")? as *mut ffi::PicardWindow,
            block_ends: self.ptr(&window.ends, num_blocks, op, "block ends")? as *const i32,
            tab: self.tables_raw(tables, plan.steps, op)?,
            noise: ffi::PicardNoise {
                seed: 0,
                sample0: 0,
                table: std::ptr::null(),
            },
            dim: c_long(shape.dim, "dim")?,
            batch: c_int(shape.batch, "batch")?,
            steps: c_int(plan.steps, "steps")?,
            window: c_int(plan.window, "window")?,
            mode: mode as i32,
            form: match plan.form {
                PicardForm::Scan => ffi::PICARDIFF_FORM_SCAN,
                PicardForm::Drift => ffi::PICARDIFF_FORM_DRIFT,
            } as i32,
            num_blocks: c_int(num_blocks, "blocks")?,
            block_iters: c_int(block_iters, "iters")?,
            tol2: plan.tol2,
            final_tol2: plan.final_stop.map_or(-1.0, |f| f.tol2),
            sweep_path: sweep_path() as i32,
            noisy: i32::from(tables.noisy),
            hist: std::ptr::null_mut(),
            hist_slots: 0,
        })
    }

    /// Picard error partials per (point, sample): `window × batch × units` (one per 128 elements).
    pub(super) fn partial_len(&self, plan: &WindowPlan, shape: Shape) -> usize {
        // SAFETY: a pure host function of its argument.
        let bps = unsafe { ffi::picardiff_sweep_blocks_per_sample(shape.dim as i64) };
        plan.window * shape.batch * bps.max(1) as usize
    }

    pub(super) fn launch_fill(
        &self,
        buf: &mut CudaSlice<f32>,
        offset: usize,
        len: usize,
        value: f32,
    ) -> Result<()> {
        if len == 0 {
            return Ok(());
        }
        let p = self.ptr_mut(buf, offset + len, "fill", "buffer")?;
        self.bind("fill")?;
        // SAFETY: [offset, offset + len) lies inside `buf` (checked), a buffer of this backend's
        // stream; the kernel writes exactly that range, in stream order.
        let code = unsafe {
            ffi::launch_fill_f32(at(p, offset), c_long(len, "len")?, value, self.cu_stream())
        };
        check(code, "fill")
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn launch_normal_fill(
        &self,
        buf: &mut CudaSlice<f32>,
        offset: usize,
        shape: Shape,
        seed: u64,
        sample0: u32,
        step: u32,
        tag: u32,
    ) -> Result<()> {
        if shape.slot_len() == 0 {
            return Ok(());
        }
        let p = self.ptr_mut(buf, offset + shape.slot_len(), "normal_fill", "buffer")?;
        let (batch, dim) = (c_int(shape.batch, "batch")?, c_long(shape.dim, "dim")?);
        self.bind("normal_fill")?;
        // SAFETY: the kernel writes batch × dim values from `offset`, inside `buf` (checked).
        let code = unsafe {
            ffi::launch_normal_fill_f32(
                at(p, offset),
                batch,
                dim,
                seed,
                sample0,
                step,
                tag,
                self.cu_stream(),
            )
        };
        check(code, "normal_fill")
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn launch_step(
        &self,
        tables: &CudaTables,
        j: usize,
        shape: Shape,
        x: &mut CudaSlice<f32>,
        x_off: usize,
        out: &CudaSlice<f32>,
        out_off: usize,
        noise: Noise<'_, Self>,
    ) -> Result<()> {
        const OP: &str = "step";
        if j >= tables.steps {
            return Err(Error::shape(
                OP,
                format!("step {j} of a {}-step table", tables.steps),
            ));
        }
        if shape.slot_len() == 0 {
            return Ok(());
        }
        let slot = shape.slot_len();
        let state = (1 + tables.history) * slot; // a multistep rule's directions follow the state
        let params = ffi::PicardStepParams {
            x: at(self.ptr_mut(x, x_off + state, OP, "state")?, x_off),
            status: self.ptr(&tables.status, 1, OP, "step status")? as *mut i32,
            out: at(self.ptr(out, out_off + slot, OP, "model output")?, out_off),
            step_counter: std::ptr::null(),
            tab: self.tables_raw(tables, tables.steps, OP)?,
            noise: self.noise_raw(noise, j + 1, shape, OP)?,
            dim: c_long(shape.dim, "dim")?,
            batch: c_int(shape.batch, "batch")?,
            j: c_int(j, "step")?,
            steps: c_int(tables.steps, "steps")?,
        };
        self.bind(OP)?;
        // SAFETY: x holds (1 + history) and out one slot of batch × dim values at their offsets
        // (a multistep step touches the state and its direction slots), the tables `steps` > j values,
        // a noise table (j + 1) × batch × dim, the status one i32 (all checked); the kernel touches
        // only those (the status is device memory the host never borrows, only copies).
        let code = unsafe { ffi::launch_picard_step_f32(params, self.cu_stream()) };
        check(code, OP)
    }

    /// Begins the sequential step the counter of `seq` names on the device: `times[..batch]` =
    /// t_j, then the counter moves to j + 1 (kernels/elementwise.cu `seq_begin_f32`).
    pub(super) fn launch_seq_begin(
        &self,
        tables: &CudaTables,
        seq: &mut CudaSeq,
        times: &mut CudaSlice<f32>,
        batch: usize,
    ) -> Result<()> {
        const OP: &str = "sequential step (begin)";
        if seq.steps != tables.steps {
            return Err(Error::shape(
                OP,
                format!(
                    "the step counter was made for {} steps, the table has {}",
                    seq.steps, tables.steps
                ),
            ));
        }
        if batch == 0 {
            return Ok(());
        }
        let counter = self.ptr_mut(&mut seq.counter, 1, OP, "step counter")? as *mut i32;
        let t = self.ptr(&tables.t, tables.steps, OP, "step table")? as *const f32;
        let tp = self.ptr_mut(times, batch, OP, "model times")? as *mut f32;
        let (b, steps) = (c_int(batch, "batch")?, c_int(tables.steps, "steps")?);
        self.bind(OP)?;
        // SAFETY: the counter is one i32, t holds `steps` values and times `batch` (checked); the
        // kernel reads t[j] only for 0 <= j < steps and writes times[..batch] and the counter.
        let code = unsafe { ffi::launch_seq_begin_f32(counter, t, tp, b, steps, self.cu_stream()) };
        check(code, OP)
    }

    /// The sequential step that [`CudaBackend::launch_seq_begin`] began, its index read on the
    /// device: x (one slot at offset 0) updated in place from out (one slot at offset 0).
    pub(super) fn launch_seq_step(
        &self,
        tables: &CudaTables,
        seq: &CudaSeq,
        shape: Shape,
        x: &mut CudaSlice<f32>,
        out: &CudaSlice<f32>,
        noise: Noise<'_, Self>,
    ) -> Result<()> {
        const OP: &str = "step";
        if seq.steps != tables.steps {
            return Err(Error::shape(
                OP,
                format!(
                    "the step counter was made for {} steps, the table has {}",
                    seq.steps, tables.steps
                ),
            ));
        }
        let slot = shape.slot_len();
        if slot == 0 {
            return Ok(());
        }
        let state = (1 + tables.history) * slot; // a multistep rule's directions follow the state
        let params = ffi::PicardStepParams {
            x: self.ptr_mut(x, state, OP, "state")? as *mut f32,
            status: self.ptr(&tables.status, 1, OP, "step status")? as *mut i32,
            out: self.ptr(out, slot, OP, "model output")? as *const f32,
            step_counter: self.ptr(&seq.counter, 1, OP, "step counter")? as *const i32,
            tab: self.tables_raw(tables, tables.steps, OP)?,
            noise: self.noise_raw(noise, tables.steps, shape, OP)?,
            dim: c_long(shape.dim, "dim")?,
            batch: c_int(shape.batch, "batch")?,
            j: 0,
            steps: c_int(tables.steps, "steps")?,
        };
        self.bind(OP)?;
        // SAFETY: x holds (1 + history) and out one slot of batch × dim values (a multistep step
        // touches the state and its direction slots), the tables and a noise table `steps` rows /
        // slots, the status and the counter one i32 each (all checked); the kernel reads the step j
        // from the counter and does nothing unless 0 <= j < steps, so it touches only those.
        let code = unsafe { ffi::launch_picard_step_f32(params, self.cu_stream()) };
        check(code, OP)
    }

    /// One Picard sweep of the Langevin corrector over `x` (M + 1 slots) from `out` (M slots).
    pub(super) fn launch_langevin_sweep(
        &self,
        lp: &LangevinSweep,
        shape: Shape,
        x: &mut CudaSlice<f32>,
        out: &CudaSlice<f32>,
    ) -> Result<()> {
        const OP: &str = "langevin_sweep";
        let slot = shape.slot_len();
        if slot == 0 || lp.steps == 0 {
            return Ok(());
        }
        let need = |n: usize| {
            n.checked_mul(slot)
                .ok_or_else(|| Error::shape(OP, format!("{n} corrector slots overflow")))
        };
        let params = ffi::LangevinParams {
            x: self.ptr_mut(x, need(lp.steps + 1)?, OP, "corrector states")? as *mut f32,
            out: self.ptr(out, need(lp.steps)?, OP, "corrector model outputs")? as *const f32,
            dim: c_long(shape.dim, "dim")?,
            batch: c_int(shape.batch, "batch")?,
            steps: c_int(lp.steps, "corrector steps")?,
            h: lp.h,
            decay: lp.decay,
            force: lp.force,
            kick: lp.kick,
            p: lp.p,
            q: lp.q,
            seed: lp.seed,
            sample0: lp.sample0,
            step0: lp.step0,
        };
        self.bind(OP)?;
        // SAFETY: x holds (M + 1) × batch × dim and out M × batch × dim values (checked); the kernel
        // touches only those.
        let code = unsafe { ffi::launch_langevin_sweep_f32(params, self.cu_stream()) };
        check(code, OP)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn launch_picard_sweep(
        &self,
        plan: &WindowPlan,
        tables: &CudaTables,
        window: &CudaWindow,
        shape: Shape,
        x: &mut CudaSlice<f32>,
        out: &CudaSlice<f32>,
        noise: Noise<'_, Self>,
        err: &mut CudaSlice<f32>,
    ) -> Result<()> {
        const OP: &str = "picard_sweep";
        let ring = plan.ring() * shape.slot_len();
        let mut p = self.picard_params(plan, tables, window, shape, OP)?;
        p.x = self.ptr_mut(x, ring, OP, "state ring")? as *mut f32;
        p.out = self.ptr(out, ring, OP, "model output ring")? as *const f32;
        p.partial =
            self.ptr_mut(err, self.partial_len(plan, shape), OP, "error partials")? as *mut f32;
        p.noise = self.noise_raw(noise, plan.steps, shape, OP)?;
        match (&window.hist, tables.history) {
            (Some((ring, slots)), h) if h > 0 && *slots >= plan.window + h => {
                p.hist =
                    self.ptr(ring, slots * shape.slot_len(), OP, "direction ring")? as *mut f32;
                p.hist_slots = c_int(*slots, "direction slots")?;
            }
            (None, 0) => {}
            _ => {
                return Err(Error::shape(
                    OP,
                    "the window was created for another step table",
                ))
            }
        }
        self.bind(OP)?;
        // SAFETY: x and out hold the whole ring (R × batch × dim), err the window × batch × blocks
        // partials, the tables and a noise table all `steps`, a multistep rule's direction ring
        // hist_slots ≥ window + history slots (checked). The device window state was
        // made by window_new and only updated by picard_advance, so start ≤ end ≤ steps and
        // end − start ≤ window: the kernel stays inside those ranges.
        let code = unsafe { ffi::launch_picard_sweep_f32(p, self.cu_stream()) };
        check(code, OP)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn launch_picard_advance(
        &self,
        plan: &WindowPlan,
        tables: &CudaTables,
        window: &mut CudaWindow,
        shape: Shape,
        x: &mut CudaSlice<f32>,
        times: &mut CudaSlice<f32>,
        err: &CudaSlice<f32>,
    ) -> Result<()> {
        const OP: &str = "picard_advance";
        let mut p = self.picard_params(plan, tables, window, shape, OP)?;
        p.partial = self.ptr(err, self.partial_len(plan, shape), OP, "error partials")? as *mut f32;
        p.x = self.ptr_mut(x, plan.ring() * shape.slot_len(), OP, "state ring")? as *mut f32;
        p.times =
            self.ptr_mut(times, plan.ring() * shape.batch, OP, "model time ring")? as *mut f32;
        self.bind(OP)?;
        // SAFETY: as for the sweep; the advance kernel reads the partials of the window's points and
        // var[start..end), writes only the window state, and keeps start ≤ end ≤ steps,
        // end − start ≤ window (block ends are ≤ steps, checked by WindowPlan::blocks).
        let code = unsafe { ffi::launch_picard_advance_f32(p, self.cu_stream()) };
        check(code, OP)?;
        // SAFETY: the new-slots kernel copies slot old_end % R into slots m % R for
        // m ∈ (old_end, end] and writes times[m % R][..batch] for m < steps: inside the checked ring.
        let code = unsafe { ffi::launch_picard_new_slots_f32(p, self.cu_stream()) };
        check(code, "picard_advance (new slots)")
    }

    /// In place `y[r][c] = act(y[r][c] + bias[c])` on `rows × cols` row-major values at the start of
    /// `y` (the MLP epilogue after a GEMM); `bias` has `cols` values or is `None`, `act` `None` is
    /// the identity.
    pub fn bias_act(
        &self,
        y: &mut CudaSlice<f32>,
        bias: Option<&CudaSlice<f32>>,
        rows: usize,
        cols: usize,
        act: Option<Activation>,
    ) -> Result<()> {
        self.bias_act_at((y, 0), bias, rows, cols, act)
    }

    /// [`CudaBackend::bias_act`] on the `rows × cols` values of `y.0` from element `y.1` (the one
    /// wrapper of `launch_bias_act_f32`; `Ops` adds its biases with it).
    pub(super) fn bias_act_at(
        &self,
        y: (&mut CudaSlice<f32>, usize),
        bias: Option<&CudaSlice<f32>>,
        rows: usize,
        cols: usize,
        act: Option<Activation>,
    ) -> Result<()> {
        let _exclusive = self.exclusive();
        const OP: &str = "bias_act";
        let n = rows
            .checked_mul(cols)
            .ok_or_else(|| Error::shape(OP, "rows × cols overflows"))?;
        if n == 0 {
            return Ok(());
        }
        let end =
            y.1.checked_add(n)
                .ok_or_else(|| Error::shape(OP, "range overflows"))?;
        let yp = at(self.ptr_mut(y.0, end, OP, "activations")?, y.1);
        let bp = match bias {
            Some(b) => self.ptr(b, cols, OP, "bias")? as *const f32,
            None => std::ptr::null(),
        };
        let act = match act {
            None => ffi::PICARDIFF_ACT_NONE,
            Some(Activation::Silu) => ffi::PICARDIFF_ACT_SILU,
            Some(Activation::GeluTanh) => ffi::PICARDIFF_ACT_GELU_TANH,
        } as i32;
        self.bind(OP)?;
        // SAFETY: y holds rows × cols values from its offset and bias (if any) cols values (checked).
        let code = unsafe {
            ffi::launch_bias_act_f32(
                yp,
                bp,
                c_long(rows, "rows")?,
                c_long(cols, "cols")?,
                act,
                self.cu_stream(),
            )
        };
        check(code, OP)
    }
}
