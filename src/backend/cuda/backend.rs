//! `impl Backend for CudaBackend`: buffers, step tables and the device-resident Picard window.

use std::cell::Cell;

use cudarc::driver::{CudaGraph, CudaSlice, DeviceRepr};

use super::launch::c_int;
use super::tables::CudaTables;
use super::{ffi, CudaBackend, DeviceResultExt};
use crate::backend::{
    covering_slots, Backend, IterationRun, LangevinSweep, Noise, RunGuard, Shape, SlotRange,
    UnconvergedBlock, WindowMode, WindowPlan, WindowState,
};
use crate::error::{Error, Result};
use crate::schedule::StepTable;

// SAFETY: PicardWindow is a #[repr(C)] struct of ten i32 and two f32 (no padding, no pointers),
// valid for any bits, with the same layout in the kernels.
unsafe impl DeviceRepr for ffi::PicardWindow {}

/// Iterations between host reads of the window state.
pub const SYNC_INTERVAL: usize = 8;

/// The Picard window state in device memory (`PicardWindow` of the kernels' header) and the block
/// end table; the host reads it with [`Backend::window_read`]. Host side: the window start seen at
/// the last read (a lower bound of the device's start, which only grows) and the CUDA graph of the
/// iteration recorded for the current model slots.
pub struct CudaWindow {
    pub(super) state: CudaSlice<ffi::PicardWindow>,
    pub(super) ends: CudaSlice<i32>,
    pub(super) num_blocks: usize,
    /// A multistep rule's direction ring (`window + history` slots; `PicardParams::hist`).
    pub(super) hist: Option<(CudaSlice<f32>, usize)>,
    known_start: Cell<usize>,
    graph: Option<([Option<SlotRange>; 2], CudaGraph)>,
}

/// The sequential sampler's step counter in device memory (one i32: the steps begun, advanced by
/// the `seq_begin_f32` kernel) and the CUDA graph of one step recorded for it: the step kernel reads
/// its index from the counter, so one graph replays every step.
pub struct CudaSeq {
    pub(super) counter: CudaSlice<i32>,
    pub(super) steps: usize,
    graph: Option<CudaGraph>,
}

impl std::fmt::Debug for CudaSeq {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaSeq")
            .field("steps", &self.steps)
            .field("recorded", &self.graph.is_some())
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for CudaWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaWindow")
            .field("num_blocks", &self.num_blocks)
            .field("known_start", &self.known_start.get())
            .field("graph", &self.graph.as_ref().map(|g| &g.0))
            .finish_non_exhaustive()
    }
}

fn range_check(op: &str, len: usize, off: usize, n: usize) -> Result<()> {
    match off.checked_add(n) {
        Some(end) if end <= len => Ok(()),
        _ => Err(Error::shape(
            op,
            format!(
                "range {off}..{} out of bounds of a buffer of {len}",
                off.saturating_add(n)
            ),
        )),
    }
}

impl Backend for CudaBackend {
    type Buf = CudaSlice<f32>;
    type Tables = CudaTables;
    type Window = CudaWindow;
    type Seq = CudaSeq;

    fn name(&self) -> &'static str {
        "cuda"
    }

    fn alloc(&self, len: usize) -> Result<CudaSlice<f32>> {
        let _exclusive = self.exclusive();
        let r = if len == 0 {
            self.stream.null()
        } else {
            self.stream.alloc_zeros(len)
        };
        r.during(&format!("alloc ({len} f32)"))
    }

    fn upload(&self, data: &[f32]) -> Result<CudaSlice<f32>> {
        let _exclusive = self.exclusive();
        if data.is_empty() {
            return self.alloc(0);
        }
        self.stream.clone_htod(data).during("upload")
    }

    fn download(&self, buf: &CudaSlice<f32>, offset: usize, out: &mut [f32]) -> Result<()> {
        let _exclusive = self.exclusive();
        range_check("download", buf.len(), offset, out.len())?;
        self.owns(buf.stream(), "download")?;
        if !out.is_empty() {
            let view = buf.slice(offset..offset + out.len());
            self.stream.memcpy_dtoh(&view, out).during("download")?;
        }
        self.synchronize()
    }

    fn copy(
        &self,
        src: &CudaSlice<f32>,
        src_off: usize,
        dst: &mut CudaSlice<f32>,
        dst_off: usize,
        len: usize,
    ) -> Result<()> {
        let _exclusive = self.exclusive();
        range_check("copy (source)", src.len(), src_off, len)?;
        range_check("copy (destination)", dst.len(), dst_off, len)?;
        self.owns(src.stream(), "copy")?;
        self.owns(dst.stream(), "copy")?;
        if len == 0 {
            return Ok(());
        }
        let from = src.slice(src_off..src_off + len);
        let mut to = dst.slice_mut(dst_off..dst_off + len);
        self.stream.memcpy_dtod(&from, &mut to).during("copy")
    }

    fn fill(&self, buf: &mut CudaSlice<f32>, offset: usize, len: usize, value: f32) -> Result<()> {
        let _exclusive = self.exclusive();
        range_check("fill", buf.len(), offset, len)?;
        self.launch_fill(buf, offset, len, value)
    }

    /// One partial sum per (window point, sample, unit of 128 elements).
    fn err_len(&self, plan: &WindowPlan, shape: Shape) -> usize {
        self.partial_len(plan, shape)
    }

    /// The memory this process can still allocate ([`CudaBackend::available_memory`]).
    fn free_memory(&self) -> Option<usize> {
        self.available_memory().ok()
    }

    /// `window + history` slots of directions ([`CudaWindow`]) for a multistep rule.
    fn history_ring_len(&self, plan: &WindowPlan, shape: Shape, history: usize) -> usize {
        if history == 0 {
            0
        } else {
            (plan.window + history) * shape.slot_len()
        }
    }

    fn sync_interval(&self) -> usize {
        SYNC_INTERVAL
    }

    fn upload_tables(&self, t: &StepTable) -> Result<CudaTables> {
        let _exclusive = self.exclusive();
        self.tables_new(t)
    }

    fn normal_fill(
        &self,
        buf: &mut CudaSlice<f32>,
        offset: usize,
        shape: Shape,
        seed: u64,
        sample0: u32,
        step: u32,
        tag: u32,
    ) -> Result<()> {
        let _exclusive = self.exclusive();
        range_check("normal_fill", buf.len(), offset, shape.slot_len())?;
        self.launch_normal_fill(buf, offset, shape, seed, sample0, step, tag)
    }

    fn step(
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
        let _exclusive = self.exclusive();
        self.launch_step(tables, j, shape, x, x_off, out, out_off, noise)?;
        // The kernel records the first non-finite step on the device; read it once, after the last
        // step, rather than synchronising every step.
        if j + 1 == tables.steps {
            let mut first = [i32::MAX];
            self.stream
                .memcpy_dtoh(&tables.status, &mut first)
                .during("step (status)")?;
            self.synchronize()?;
            if first[0] != i32::MAX {
                return Err(Error::NonFinite {
                    op: "sequential step (state or model output)".into(),
                    step: first[0].max(0) as usize,
                });
            }
        }
        Ok(())
    }

    fn window_new(
        &self,
        plan: &WindowPlan,
        tables: &CudaTables,
        times: &mut CudaSlice<f32>,
        shape: Shape,
    ) -> Result<CudaWindow> {
        let _exclusive = self.exclusive();
        if tables.steps != plan.steps || plan.steps == 0 {
            return Err(Error::shape(
                "window_new",
                format!(
                    "step table has {} steps, the plan {}",
                    tables.steps, plan.steps
                ),
            ));
        }
        let st = plan.initial_state();
        let state = ffi::PicardWindow {
            start: 0,
            end: c_int(st.end, "steps")?,
            iters: 0,
            nfe: 0,
            block: 0,
            block_iters: 0,
            old_end: c_int(st.end, "steps")?,
            bad_point: 0,
            worst_block_err: 0.0,
            unconverged_block: 0,
            unconverged_end: 0,
            unconverged_err: 0.0,
            final_sweeps: 0,
            final_err: 0.0,
            final_stopped: 0,
        };
        let ends: Vec<i32> = match &plan.mode {
            WindowMode::Sliding => vec![0],
            WindowMode::Blocks { ends, .. } => ends
                .iter()
                .map(|&e| c_int(e, "block end"))
                .collect::<Result<_>>()?,
        };
        let num_blocks = match &plan.mode {
            WindowMode::Sliding => 0,
            WindowMode::Blocks { ends, .. } => ends.len(),
        };
        // Model times of the first window's points m = 0..=min(end, steps - 1) (slots 0..=that, as
        // end <= window < R), like the CPU backend: the slot of point N = steps has no model time
        // and keeps what the buffer holds (zeros from alloc, a valid time for every schedule).
        let (r, b) = (plan.ring(), shape.batch);
        range_check("window_new (times)", times.len(), 0, r * b)?;
        self.owns(times.stream(), "window_new")?;
        let last = st.end.min(plan.steps - 1);
        let mut host = Vec::with_capacity((last + 1) * b);
        for &t in &tables.t_host[..=last] {
            host.resize(host.len() + b, t);
        }
        if !host.is_empty() {
            let mut view = times.slice_mut(0..host.len());
            self.stream
                .memcpy_htod(&host, &mut view)
                .during("window_new (times)")?;
        }
        let hist = match tables.history {
            0 => None,
            h => {
                let slots = plan.window + h;
                let len = slots.checked_mul(shape.slot_len()).ok_or_else(|| {
                    Error::shape("window_new", "the direction ring's size overflows")
                })?;
                let ring = self
                    .stream
                    .alloc_zeros(len)
                    .during("window_new (directions)")?;
                Some((ring, slots))
            }
        };
        Ok(CudaWindow {
            state: self.stream.clone_htod(&[state]).during("window_new")?,
            ends: self.stream.clone_htod(&ends).during("window_new")?,
            num_blocks,
            hist,
            known_start: Cell::new(0),
            graph: None,
        })
    }

    fn window_read(&self, w: &CudaWindow) -> Result<WindowState> {
        let _exclusive = self.exclusive();
        self.owns(w.state.stream(), "window_read")?;
        let mut host = [ffi::PicardWindow::default()];
        self.stream
            .memcpy_dtoh(&w.state, &mut host)
            .during("window_read")?;
        self.synchronize()?;
        let s = host[0];
        if s.bad_point > 0 {
            // bad_point is the first point with a non-finite error; the step that produced it is
            // the one before.
            return Err(Error::NonFinite {
                op: "picard iteration (state or model output)".into(),
                step: s.bad_point as usize - 1,
            });
        }
        let u = |v: i32| v.max(0) as usize;
        w.known_start.set(u(s.start));
        Ok(WindowState {
            start: u(s.start),
            end: u(s.end),
            iters: u(s.iters),
            nfe: u(s.nfe),
            block: u(s.block),
            block_iters: u(s.block_iters),
            worst_block_err: s.worst_block_err,
            unconverged: (s.unconverged_block > 0).then(|| UnconvergedBlock {
                block: u(s.unconverged_block - 1),
                end: u(s.unconverged_end),
                err: s.unconverged_err,
            }),
            final_sweeps: u(s.final_sweeps),
            final_err: s.final_err,
            final_stopped: s.final_stopped != 0,
        })
    }

    /// A superset of the window's points that the host can name without reading the device: the
    /// points from the start seen at the last [`Backend::window_read`] (the device's start is at
    /// least that) to the last step, when they fit in the ring; the whole ring otherwise. The
    /// shapes change only at completion checks, so a recorded iteration is replayed in between.
    fn model_slots(&self, w: &CudaWindow, plan: &WindowPlan) -> Result<[Option<SlotRange>; 2]> {
        Ok(covering_slots(plan, w.known_start.get()))
    }

    /// The backend's [`RunLock`](crate::backend::RunLock): a run holds it throughout, so that no other thread's work lands
    /// in a graph this run is recording on the shared stream.
    fn run_guard(&self) -> Option<RunGuard<'_>> {
        Some(self.exclusive())
    }

    /// Records `body` into a CUDA graph (stream capture, thread-local mode) the first time it sees
    /// `slots` and launches the graph; later calls with the same slots launch it again. Recording
    /// is skipped (the body runs eagerly) when `recordable` is false or graphs are off
    /// ([`CudaBackend::set_graphs`]). When a capture or a new graph's first launch fails, the body
    /// runs eagerly: if it fails again, that is the run's error (graphs stay on); if it succeeds,
    /// the driver or cuBLAS refused the graph, and graphs are turned off for this backend with the
    /// reason kept ([`CudaBackend::graph_refusal`]), so a run never fails for want of a graph. An
    /// asynchronous error stored on the context is the run's error, not a refusal.
    unsafe fn iteration(
        &self,
        w: &mut CudaWindow,
        slots: &[Option<SlotRange>; 2],
        recordable: bool,
        body: &mut dyn FnMut(&mut CudaWindow) -> Result<()>,
    ) -> Result<IterationRun> {
        let _exclusive = self.exclusive();
        if !recordable || !self.graphs_enabled() {
            body(w)?;
            return Ok(IterationRun::Eager);
        }
        let key = *slots; // a Copy array: the iteration allocates nothing
        if let Some((k, graph)) = &w.graph {
            if *k == key {
                graph.launch().during("iteration (graph launch)")?;
                return Ok(IterationRun::Replayed);
            }
        }
        w.graph = None;
        Ok(match self.record_and_launch(w, body)? {
            Some(graph) => {
                w.graph = Some((key, graph));
                IterationRun::Recorded
            }
            None => IterationRun::Eager,
        })
    }

    fn seq_new(&self, tables: &CudaTables) -> Result<CudaSeq> {
        let _exclusive = self.exclusive();
        c_int(tables.steps, "steps")?;
        Ok(CudaSeq {
            counter: self.stream.clone_htod(&[0i32]).during("seq_new")?,
            steps: tables.steps,
            graph: None,
        })
    }

    fn seq_begin(
        &self,
        tables: &CudaTables,
        seq: &mut CudaSeq,
        times: &mut CudaSlice<f32>,
        batch: usize,
    ) -> Result<()> {
        let _exclusive = self.exclusive();
        range_check("seq_begin (times)", times.len(), 0, batch)?;
        self.launch_seq_begin(tables, seq, times, batch)
    }

    fn seq_step(
        &self,
        tables: &CudaTables,
        seq: &CudaSeq,
        shape: Shape,
        x: &mut CudaSlice<f32>,
        out: &CudaSlice<f32>,
        noise: Noise<'_, Self>,
    ) -> Result<()> {
        let _exclusive = self.exclusive();
        self.launch_seq_step(tables, seq, shape, x, out, noise)
    }

    /// Reads the first non-finite step the step kernels recorded (a synchronisation).
    fn seq_finish(&self, tables: &CudaTables, seq: &CudaSeq) -> Result<()> {
        let _exclusive = self.exclusive();
        self.owns(seq.counter.stream(), "seq_finish")?;
        let mut first = [i32::MAX];
        self.stream
            .memcpy_dtoh(&tables.status, &mut first)
            .during("step (status)")?;
        self.synchronize()?;
        if first[0] != i32::MAX {
            return Err(Error::NonFinite {
                op: "sequential step (state or model output)".into(),
                step: first[0].max(0) as usize,
            });
        }
        Ok(())
    }

    /// [`Backend::iteration`] for the sequential sampler: records `body` (begin, model, step) into a
    /// CUDA graph on the first call for `seq` and replays it for every later step (the kernels read
    /// the step from the device counter); eager when `recordable` is false or graphs are off, with
    /// the same fallback on a refused graph as [`Backend::iteration`].
    unsafe fn sequential_step(
        &self,
        seq: &mut CudaSeq,
        recordable: bool,
        body: &mut dyn FnMut(&mut CudaSeq) -> Result<()>,
    ) -> Result<IterationRun> {
        let _exclusive = self.exclusive();
        if !recordable || !self.graphs_enabled() {
            body(seq)?;
            return Ok(IterationRun::Eager);
        }
        if let Some(graph) = &seq.graph {
            graph.launch().during("sequential step (graph launch)")?;
            return Ok(IterationRun::Replayed);
        }
        Ok(match self.record_and_launch(seq, body)? {
            Some(graph) => {
                seq.graph = Some(graph);
                IterationRun::Recorded
            }
            None => IterationRun::Eager,
        })
    }

    fn picard_sweep(
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
        let _exclusive = self.exclusive();
        self.launch_picard_sweep(plan, tables, window, shape, x, out, noise, err)
    }

    fn picard_advance(
        &self,
        plan: &WindowPlan,
        tables: &CudaTables,
        window: &mut CudaWindow,
        shape: Shape,
        x: &mut CudaSlice<f32>,
        times: &mut CudaSlice<f32>,
        err: &CudaSlice<f32>,
    ) -> Result<()> {
        let _exclusive = self.exclusive();
        self.launch_picard_advance(plan, tables, window, shape, x, times, err)
    }

    /// The corrector's sweep (kernels/langevin.cu): the CPU's results bit for bit.
    fn langevin_sweep(
        &self,
        params: &LangevinSweep,
        shape: Shape,
        x: &mut CudaSlice<f32>,
        out: &CudaSlice<f32>,
    ) -> Result<()> {
        let _exclusive = self.exclusive();
        self.launch_langevin_sweep(params, shape, x, out)
    }
}
