//! The backend abstraction: buffers plus the few fused operations the samplers need.
//!
//! Samplers (`crate::sampler`) are generic over [`Backend`] and never touch a device API. A backend
//! owns its buffers (`Buf`), the uploaded step tables (`Tables`) and the Picard window state
//! (`Window`), which lives wherever the backend computes: host memory on the CPU, device memory on
//! CUDA, where the host only reads it at the periodic completion check.
//!
//! Layout shared by every backend: the Picard iterate is a ring of `R = window + 1` slots, point m of
//! the grid in slot `m % R`; a slot holds `batch × dim` f32 values, sample-major (`[b][d]`). Model
//! outputs use the same ring layout; the per-row model times are a ring of `R × batch` f32.

pub mod cpu;
mod cpu_gemm;
mod cpu_ops;
mod cpu_window;
#[cfg(feature = "cuda")]
pub mod cuda;
mod host;
pub mod ops;
mod window;

pub use window::{
    covering_slots, FinalStop, UnconvergedBlock, WindowMode, WindowPlan, WindowState,
    ANDERSON_HISTORY,
};

use crate::error::Result;
use crate::schedule::StepTable;

/// The two forms of the Picard update (`docs/algorithms.md` §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PicardForm {
    /// Scan the exact affine recurrence with the old scores: `Y[m+1] = a Y[m] + b E[m] + c z`.
    #[default]
    Scan,
    /// ParaDiGMS' sum of Euler-style drifts at the old iterate: `Y[m+1] = Y[m] + (a−1) X[m] + b E[m] + c z`.
    Drift,
}

/// Where the step noise z comes from.
pub enum Noise<'a, B: Backend + ?Sized> {
    /// Philox4x32-10 keyed by `seed`, counter (element group, step, `sample0` + b, tag).
    Philox {
        /// The 64-bit seed.
        seed: u64,
        /// Global index of the batch's first sample (so batch splits reproduce the same noise).
        sample0: u32,
    },
    /// A caller-supplied table `[steps][batch][dim]`.
    Table(&'a B::Buf),
}

impl<B: Backend + ?Sized> Clone for Noise<'_, B> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<B: Backend + ?Sized> Copy for Noise<'_, B> {}

/// Shape of one run: samples and elements per sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// Samples in the batch (B).
    pub batch: usize,
    /// Elements per sample (D).
    pub dim: usize,
}

impl Shape {
    /// Elements in one grid point's slot, `batch × dim`. Infallible: the sampler validates the
    /// shape with checked arithmetic once at the start of a run.
    pub fn slot_len(&self) -> usize {
        self.batch * self.dim
    }
}

/// A contiguous range of ring slots to evaluate the model on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotRange {
    /// First slot.
    pub start: usize,
    /// Number of slots.
    pub len: usize,
}

/// Refuses a multistep table the backends' kernels do not run: both keep one or two earlier points'
/// directions and run the multistep step without noise or clipping (`docs/algorithms.md` §9).
/// `backend` names the refusing backend in the error.
pub(crate) fn check_multistep(t: &StepTable, backend: &str) -> Result<()> {
    let Some(m) = &t.multistep else {
        return Ok(());
    };
    if t.c.iter().any(|&c| c != 0.0) || t.clip.is_some() || !(1..=2).contains(&m.history) {
        return Err(crate::Error::config(
            crate::Field::Rule,
            format!(
                "the {backend} backend runs the multistep rule `{}` with 1 or 2 earlier points, \
                 without noise or clipping",
                m.rule
            ),
        ));
    }
    let steps = t.a.len();
    if m.b1.len() != steps || m.b2.len() != steps {
        return Err(crate::Error::shape(
            "upload_tables",
            format!("the multistep columns must have {steps} values (one per step)"),
        ));
    }
    Ok(())
}

/// The ring slots of `len` consecutive grid points from point `start` in a ring of `ring` slots: one
/// range, or two when the points wrap around the ring's end. `len` must be at most `ring`.
pub fn ring_ranges(ring: usize, start: usize, len: usize) -> [Option<SlotRange>; 2] {
    debug_assert!(len <= ring, "{len} points do not fit a ring of {ring}");
    let first = start % ring;
    if len == 0 {
        [None, None]
    } else if first + len <= ring {
        [Some(SlotRange { start: first, len }), None]
    } else {
        [
            Some(SlotRange {
                start: first,
                len: ring - first,
            }),
            Some(SlotRange {
                start: 0,
                len: first + len - ring,
            }),
        ]
    }
}

/// A lock that serialises sampler runs on one backend, re-entrant on the thread that holds it (a
/// model callback may start another run on the same backend from inside a run).
#[derive(Debug, Default)]
pub struct RunLock {
    owner: std::sync::Mutex<Option<(std::thread::ThreadId, usize)>>,
    free: std::sync::Condvar,
}

/// Held for one sampler run ([`Backend::run_guard`]); releases the [`RunLock`] when dropped, on the
/// thread that took it (not `Send`: the lock is owned by a thread):
///
/// ```compile_fail
/// fn send<T: Send>(_: T) {}
/// let lock = picardiff::backend::RunLock::default();
/// send(lock.lock());
/// ```
#[derive(Debug)]
pub struct RunGuard<'a>(&'a RunLock, std::marker::PhantomData<*const ()>);

impl RunLock {
    /// Waits until no other thread holds the lock, then holds it (again, on this thread).
    pub fn lock(&self) -> RunGuard<'_> {
        let me = std::thread::current().id();
        let mut owner = self.owner.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            match *owner {
                None => *owner = Some((me, 1)),
                Some((t, n)) if t == me => *owner = Some((t, n + 1)),
                Some(_) => {
                    owner = self.free.wait(owner).unwrap_or_else(|p| p.into_inner());
                    continue;
                }
            }
            return RunGuard(self, std::marker::PhantomData);
        }
    }
}

impl Drop for RunGuard<'_> {
    fn drop(&mut self) {
        let mut owner = self.0.owner.lock().unwrap_or_else(|p| p.into_inner());
        *owner = match *owner {
            Some((t, n)) if n > 1 => Some((t, n - 1)),
            _ => None,
        };
        self.0.free.notify_one();
    }
}

/// How [`Backend::iteration`] ran one Picard iteration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IterationRun {
    /// The body enqueued its work directly.
    Eager,
    /// The body was recorded (a CUDA graph) and the recording launched.
    Recorded,
    /// An earlier recording for the same slots was launched; the body was not called.
    Replayed,
}

/// One Picard sweep of the underdamped Langevin corrector (`docs/algorithms.md` §4) at a fixed time:
/// points `x_0 … x_M` in a buffer of `M + 1` slots (`batch × dim` each, `x_0` fixed), model outputs at
/// `x_0 … x_{M−1}` in `out`. With the old outputs, the sweep rebuilds the trajectory
/// `v_0 ~ N(0, I)`, `v_{i+1} = decay·v_i + force·ε̂_i + kick·ξ_i`, `x_{i+1} = x_i + h·v_{i+1}`, where
/// `ε̂_i = p·x_i + q·out_i` and the Philox noise uses tag `TAG_CORRECTOR`, step `step0` for `v_0`
/// and `step0 + 1 + i` for `ξ_i`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LangevinSweep {
    /// Steps M.
    pub steps: usize,
    /// Step size h.
    pub h: f32,
    /// `e^{−γh}`.
    pub decay: f32,
    /// Coefficient of ε̂ in the velocity update: `−(1 − e^{−γh}) / (γ σ)` (the score is −ε̂/σ).
    pub force: f32,
    /// `sqrt(1 − e^{−2γh})`.
    pub kick: f32,
    /// ε̂ = p·x + q·out.
    pub p: f32,
    /// See `p`.
    pub q: f32,
    /// Philox seed.
    pub seed: u64,
    /// Global index of the first sample.
    pub sample0: u32,
    /// First Philox step counter of this corrector run.
    pub step0: u32,
}

/// A compute backend: buffers and the fused Picard operations. See the module docs for layouts.
pub trait Backend {
    /// An f32 buffer in the backend's memory.
    type Buf;
    /// The step table uploaded in the backend's format.
    type Tables;
    /// The Picard window state (start, end, counters) in the backend's memory.
    type Window;
    /// The sequential sampler's step counter (steps begun) in the backend's memory, so that a
    /// recorded step (a CUDA graph) reads which step it is from memory and serves every step.
    type Seq;

    /// A short name (`cpu`, `cuda`).
    fn name(&self) -> &'static str;
    /// A zero-filled buffer of `len` f32.
    fn alloc(&self, len: usize) -> Result<Self::Buf>;
    /// A buffer holding `data`.
    fn upload(&self, data: &[f32]) -> Result<Self::Buf>;
    /// Copies `out.len()` values starting at `offset` of `buf` into `out` (waits for pending work).
    fn download(&self, buf: &Self::Buf, offset: usize, out: &mut [f32]) -> Result<()>;
    /// Copies `len` values from `src[src_off..]` to `dst[dst_off..]`.
    fn copy(
        &self,
        src: &Self::Buf,
        src_off: usize,
        dst: &mut Self::Buf,
        dst_off: usize,
        len: usize,
    ) -> Result<()>;
    /// Sets `len` values of `buf` from `offset` to `value`.
    fn fill(&self, buf: &mut Self::Buf, offset: usize, len: usize, value: f32) -> Result<()>;
    /// Length of the error buffer `picard_sweep` needs for `plan` and `shape`.
    fn err_len(&self, plan: &WindowPlan, shape: Shape) -> usize;
    /// Values a window keeps of the step noise when the rule has noise (the CPU's noise ring:
    /// each point's Philox noise made once; 0 where the sweep makes it every time).
    fn noise_ring_len(&self, plan: &WindowPlan, shape: Shape) -> usize {
        let _ = (plan, shape);
        0
    }
    /// Values a window keeps of a multistep rule's directions (`history` earlier points per step,
    /// `docs/algorithms.md` §9); 0 for a one-step rule or a backend without multistep rules.
    fn history_ring_len(&self, plan: &WindowPlan, shape: Shape, history: usize) -> usize {
        let _ = (plan, shape, history);
        0
    }
    /// Values (f32-sized) a window keeps for Anderson acceleration (`docs/algorithms.md` §11):
    /// 0 when `plan` has none, None where the backend does not implement it (the sampler then
    /// refuses the run).
    fn anderson_len(&self, plan: &WindowPlan, shape: Shape) -> Option<usize> {
        let _ = shape;
        plan.anderson.is_none().then_some(0)
    }
    /// Free memory in bytes, if the backend can tell (the sampler refuses runs that need more).
    fn free_memory(&self) -> Option<usize> {
        None
    }
    /// The most iterations between completion checks (host reads of the window state); the sampler
    /// checks sooner when the window's progress predicts the end. 1 on the CPU.
    fn sync_interval(&self) -> usize {
        1
    }
    /// Uploads a step table.
    fn upload_tables(&self, table: &StepTable) -> Result<Self::Tables>;

    /// Fills `batch × dim` values at `buf[offset..]` with standard normals: sample b's element d is
    /// Philox's `(seed, step, sample0 + b, d, tag)` value (`crate::rng`).
    #[allow(clippy::too_many_arguments)]
    fn normal_fill(
        &self,
        buf: &mut Self::Buf,
        offset: usize,
        shape: Shape,
        seed: u64,
        sample0: u32,
        step: u32,
        tag: u32,
    ) -> Result<()>;

    /// One sequential step in place: `x = a_j x + b_j (p_j x + q_j out) + c_j z_j`, where `x` and
    /// `out` are `batch × dim` at the given offsets. For a multistep table (`history` H > 0,
    /// `docs/algorithms.md` §9) `x` continues with H slots holding the directions of points
    /// j − 1, …, j − H (zeros before the first step): the step is
    /// `x = a_j x + b_j d_j + b1_j d_{j−1} + b2_j d_{j−2}` with `d_j = p_j x + q_j out`, and it
    /// shifts the directions (d_j becomes the first).
    #[allow(clippy::too_many_arguments)]
    fn step(
        &self,
        tables: &Self::Tables,
        j: usize,
        shape: Shape,
        x: &mut Self::Buf,
        x_off: usize,
        out: &Self::Buf,
        out_off: usize,
        noise: Noise<'_, Self>,
    ) -> Result<()>;

    /// A step counter for `tables` at 0 (no step begun).
    fn seq_new(&self, tables: &Self::Tables) -> Result<Self::Seq>;

    /// Begins the step j that `seq` counts next (the number of steps begun so far): writes the
    /// model time t_j to `times[..batch]` and counts step j as begun. Past the last step the
    /// CPU returns an error; a device (which cannot report it without a sync) writes nothing, and
    /// the [`Backend::seq_step`] after it does nothing either.
    fn seq_begin(
        &self,
        tables: &Self::Tables,
        seq: &mut Self::Seq,
        times: &mut Self::Buf,
        batch: usize,
    ) -> Result<()>;

    /// [`Backend::step`] on the first slot of `x` and `out` for the step `seq` began last (read
    /// from the backend's memory), with the same bits (a multistep table's directions in the
    /// slots of `x` after the first).
    fn seq_step(
        &self,
        tables: &Self::Tables,
        seq: &Self::Seq,
        shape: Shape,
        x: &mut Self::Buf,
        out: &Self::Buf,
        noise: Noise<'_, Self>,
    ) -> Result<()>;

    /// After the last step: the first non-finite step a device recorded, as
    /// [`Error::NonFinite`](crate::error::Error::NonFinite) (waits for the device). The CPU
    /// reports one from [`Backend::seq_step`] at once and returns `Ok` here.
    fn seq_finish(&self, tables: &Self::Tables, seq: &Self::Seq) -> Result<()>;

    /// Runs one sequential step: `body` begins it ([`Backend::seq_begin`]), evaluates the model and
    /// runs it ([`Backend::seq_step`]). A backend that can record work (CUDA graphs) records `body`
    /// the first time it runs for this `seq` and afterwards launches the recording instead of
    /// calling `body`: the recording reads the step from the counter, so one serves every step.
    /// With `recordable` false, `body` always runs.
    ///
    /// # Safety
    /// As [`Backend::iteration`]: every call for one `seq` must pass a `body` that enqueues the same
    /// work on the same live buffers, and does nothing on the host a replay would have to repeat.
    unsafe fn sequential_step(
        &self,
        seq: &mut Self::Seq,
        recordable: bool,
        body: &mut dyn FnMut(&mut Self::Seq) -> Result<()>,
    ) -> Result<IterationRun> {
        let _ = recordable;
        body(seq)?;
        Ok(IterationRun::Eager)
    }

    /// A fresh window state for `plan` (start 0), with the ring's model times filled for its first window.
    fn window_new(
        &self,
        plan: &WindowPlan,
        tables: &Self::Tables,
        times: &mut Self::Buf,
        shape: Shape,
    ) -> Result<Self::Window>;
    /// Reads the window state back to the host (the completion check; a synchronisation on devices).
    fn window_read(&self, window: &Self::Window) -> Result<WindowState>;
    /// The ring slots the model must evaluate this iteration (a backend with a device-resident window
    /// returns the whole ring, fixed shape; the CPU returns exactly the window's points s..e−1).
    fn model_slots(
        &self,
        window: &Self::Window,
        plan: &WindowPlan,
    ) -> Result<[Option<SlotRange>; 2]>;

    /// The fused Picard update over the window: scans the step recurrence from `X[s]` with the model
    /// outputs `out` (ring layout), overwrites X[s+1..=e] with the new iterate, and writes the squared
    /// difference to the old iterate per (point, sample), normalised by `dim · v_m`, to `err`.
    #[allow(clippy::too_many_arguments)]
    fn picard_sweep(
        &self,
        plan: &WindowPlan,
        tables: &Self::Tables,
        window: &Self::Window,
        shape: Shape,
        x: &mut Self::Buf,
        out: &Self::Buf,
        noise: Noise<'_, Self>,
        err: &mut Self::Buf,
    ) -> Result<()>;

    /// Advances the window from `err` (first point with error > τ², see [`WindowState::advance`]),
    /// initialises new slots with the last computed state, writes their model times, and updates the
    /// counters. A no-op once the window has reached the end.
    #[allow(clippy::too_many_arguments)]
    fn picard_advance(
        &self,
        plan: &WindowPlan,
        tables: &Self::Tables,
        window: &mut Self::Window,
        shape: Shape,
        x: &mut Self::Buf,
        times: &mut Self::Buf,
        err: &Self::Buf,
    ) -> Result<()>;

    /// Held by the sampler for a whole run. A backend that records work from its one stream (CUDA
    /// graphs) returns a guard of a [`RunLock`]: a capture would otherwise also record whatever
    /// another thread enqueues on the same stream meanwhile. `None` (the default) where runs may
    /// overlap freely.
    fn run_guard(&self) -> Option<RunGuard<'_>> {
        None
    }

    /// Runs one Picard iteration: `body` enqueues the model calls on `slots` (from
    /// [`Backend::model_slots`]), the sweep and the advance. A backend that can record work (CUDA
    /// graphs) records `body` the first time it sees these `slots` for this `window` and afterwards
    /// launches the recording instead of calling `body`. With `recordable` false (a model that
    /// calls back into the application, which may synchronise) `body` always runs.
    ///
    /// # Safety
    /// A replay reuses the device addresses `body` used when it was recorded. For one `window`,
    /// every call with the same `slots` must pass a `body` that enqueues the same work on the same
    /// live buffers (the sampler's loop: buffers made once per run, the window dropped before
    /// them), and `body` must do nothing on the host that a replay would have to repeat.
    unsafe fn iteration(
        &self,
        window: &mut Self::Window,
        slots: &[Option<SlotRange>; 2],
        recordable: bool,
        body: &mut dyn FnMut(&mut Self::Window) -> Result<()>,
    ) -> Result<IterationRun> {
        let _ = (slots, recordable);
        body(window)?;
        Ok(IterationRun::Eager)
    }

    /// One Picard sweep of the Langevin corrector (see [`LangevinSweep`]); backends without it return
    /// an error naming themselves.
    fn langevin_sweep(
        &self,
        params: &LangevinSweep,
        shape: Shape,
        x: &mut Self::Buf,
        out: &Self::Buf,
    ) -> Result<()> {
        let _ = (params, shape, x, out);
        Err(crate::error::Error::device(
            "langevin_sweep",
            format!(
                "the Langevin corrector is not implemented on the {} backend",
                self.name()
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::RunLock;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// The lock is re-entrant on its thread and excludes other threads while held.
    #[test]
    fn run_lock_is_reentrant_and_exclusive() {
        let lock = RunLock::default();
        let inside = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..200 {
                        let _outer = lock.lock();
                        let _inner = lock.lock(); // re-entrant: no deadlock
                        let n = inside.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(n, Ordering::SeqCst);
                        std::hint::spin_loop();
                        inside.fetch_sub(1, Ordering::SeqCst);
                    }
                });
            }
        });
        assert_eq!(
            most.load(Ordering::SeqCst),
            1,
            "two threads held the lock at once"
        );
        drop(lock.lock()); // released by every thread: free again
    }
}
