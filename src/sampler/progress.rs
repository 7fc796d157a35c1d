//! An optional progress observer for long runs, installed for a scope on the calling thread (the
//! pattern of `tracing`'s `with_default`): a front end wraps its calls of [`run`](super::run) in
//! [`with_progress`], and every run made on that thread inside the closure reports to it. Without
//! an observer the sampler pays one thread-local read per run and one branch per report point; with
//! one, a call per report, never an allocation in the loop.
//!
//! Report points: the sequential sampler after every step; the window samplers (picard, blocks)
//! whenever the host reads the window state (every iteration on the CPU, at completion checks on
//! CUDA), so a report never costs a device synchronisation of its own.

use std::cell::RefCell;
use std::rc::Rc;

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// `sequential`, `picard` or `blocks` ([`SamplerKind::name`](super::SamplerKind::name)).
    pub sampler: &'static str,
    /// Grid steps whose result is final: the sequential sampler's steps taken, or the window's start
    /// (every point before it has converged). Never decreases within a run; `total` at the end.
    pub done: usize,
    /// The run's grid steps.
    pub total: usize,
    /// Sequential model calls so far (steps, or Picard iterations launched).
    pub rounds: usize,
}

/// A progress observer: called on the thread that runs the sampler, between iterations.
pub type Observer = Rc<dyn Fn(Progress)>;

thread_local! {
    static OBSERVER: RefCell<Option<Observer>> = const { RefCell::new(None) };
}

/// Runs `f` with `observer` receiving the progress of every sampler run `f` makes on this thread;
/// the previous observer (if any) is restored afterwards, also when `f` panics.
pub fn with_progress<R>(observer: Observer, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Observer>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            OBSERVER.with(|o| *o.borrow_mut() = previous);
        }
    }
    let previous = OBSERVER.with(|o| o.borrow_mut().replace(observer));
    let _restore = Restore(previous);
    f()
}

/// The observer installed for this thread, if any (read once per run).
pub(super) fn current() -> Option<Observer> {
    OBSERVER.with(|o| o.borrow().clone())
}
