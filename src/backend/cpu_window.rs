//! The CPU backend's Picard window: the window state plus a ring of the step noise of the points in
//! the window. A point's Philox noise is the same in every Picard iteration (a pure function of
//! seed, step, sample and element), and on a CPU making it costs ~3 ns per value against ~0.1 ns to
//! read it back, so the sweep makes each point's noise once, when the point first enters the window,
//! and reads it from the ring in every later sweep. The values are those `rng` gives: caching
//! changes no bit.

use std::cell::{Cell, RefCell, UnsafeCell};
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::cpu::Anderson;
use super::WindowState;
use crate::error::Result;

/// A slot that holds no point's noise.
const EMPTY: usize = usize::MAX;

/// The CPU's window ([`Backend::Window`](super::Backend::Window) of
/// [`CpuBackend`](super::cpu::CpuBackend)): dereferences to its [`WindowState`].
#[derive(Debug)]
pub struct CpuWindow {
    /// The window's position and counters.
    pub state: WindowState,
    pub(super) noise: NoiseRing,
    pub(super) hist: HistRing,
    /// Anderson acceleration's histories (`docs/algorithms.md` §11), when the plan asks for it.
    pub(super) aa: Option<RefCell<Anderson>>,
}

impl CpuWindow {
    /// A window in `state` whose noise ring has `ring` slots of `slot` values (`slot` 0: a rule
    /// without noise, no ring) and whose direction ring has `hist` slots of one point's values
    /// (`batch × dim`, the noise slot's size when there is noise; `hist` 0: a one-step rule). The
    /// rings are allocated here, before the Picard loop, never inside it.
    pub(super) fn new(
        state: WindowState,
        ring: usize,
        slot: usize,
        hist: usize,
        point_len: usize,
        aa: Option<Anderson>,
    ) -> Result<Self> {
        Ok(CpuWindow {
            state,
            noise: NoiseRing {
                stream: Cell::new(None),
                point: (0..ring).map(|_| AtomicUsize::new(EMPTY)).collect(),
                values: UnsafeCell::new(super::host::filled(ring * slot, 0.0, "noise ring")?),
            },
            hist: HistRing {
                slots: hist,
                values: UnsafeCell::new(super::host::filled(
                    hist * point_len,
                    0.0,
                    "direction ring",
                )?),
            },
            aa: aa.map(RefCell::new),
        })
    }
}

impl Deref for CpuWindow {
    type Target = WindowState;
    fn deref(&self) -> &WindowState {
        &self.state
    }
}

impl DerefMut for CpuWindow {
    fn deref_mut(&mut self) -> &mut WindowState {
        &mut self.state
    }
}

/// Ring slot `m % R` holds the noise of point `m` (`slot` values, sample-major) once a sweep has
/// made it; `point[m % R] == m` says so. Not `Sync` (the cells): one thread sweeps a window at a
/// time, and inside a sweep the parallel units write disjoint elements through a raw pointer.
#[derive(Debug)]
pub(super) struct NoiseRing {
    /// The Philox stream the values belong to: (seed, first sample).
    stream: Cell<Option<(u64, u32)>>,
    point: Vec<AtomicUsize>,
    values: UnsafeCell<Vec<f32>>,
}

impl NoiseRing {
    /// Readies the ring for a sweep with noise stream `stream` (on a new stream every slot is
    /// emptied) and returns the values' base pointer, or `None` when the window has no ring.
    pub(super) fn begin(&self, stream: (u64, u32)) -> Option<*mut f32> {
        if self.stream.get() != Some(stream) {
            self.point
                .iter()
                .for_each(|p| p.store(EMPTY, Ordering::Relaxed));
            self.stream.set(Some(stream));
        }
        // SAFETY: no reference into the values is alive between sweeps (the sweep's units use the
        // returned pointer only inside the sweep, and `&self` cannot be shared across threads).
        let values = unsafe { &mut *self.values.get() };
        (!values.is_empty()).then_some(values.as_mut_ptr())
    }

    /// Which points the ring holds: a view the sweep's parallel units may share.
    pub(super) fn marks(&self) -> RingMarks<'_> {
        RingMarks(&self.point)
    }

    /// Records that the sweep made the noise of point `m` (after its parallel units are done).
    pub(super) fn made(&self, m: usize) {
        self.point[m % self.point.len()].store(m, Ordering::Relaxed);
    }
}

/// Which point each ring slot holds ([`NoiseRing::marks`]); shareable across threads.
#[derive(Debug, Clone, Copy)]
pub(super) struct RingMarks<'a>(&'a [AtomicUsize]);

impl RingMarks<'_> {
    /// Whether the ring holds the noise of point `m`.
    pub(super) fn holds(&self, m: usize) -> bool {
        self.0[m % self.0.len()].load(Ordering::Relaxed) == m
    }
}

/// A multistep rule's directions: slot `m % slots` holds point m's `p·x + q·out` (`batch × dim`,
/// sample-major) from the last sweep that evaluated point m. Like [`NoiseRing`], written through
/// a raw pointer by the sweep's units, each on its own elements.
#[derive(Debug)]
pub(super) struct HistRing {
    /// Slots (window + history points; 0 for a one-step rule).
    pub(super) slots: usize,
    values: UnsafeCell<Vec<f32>>,
}

impl HistRing {
    /// The values' base pointer and length (`slots × batch × dim`).
    pub(super) fn values(&self) -> (*mut f32, usize) {
        // SAFETY: as `NoiseRing::begin`: no reference into the values outlives a sweep, and the
        // window is not shared across threads.
        let values = unsafe { &mut *self.values.get() };
        (values.as_mut_ptr(), values.len())
    }
}
