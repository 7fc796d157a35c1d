//! A counting global allocator for the test binaries that measure heap use (`memory.rs`,
//! `unet_alloc.rs`, `policy_load_memory.rs`): each declares `mod alloc_count;` and is alone in its
//! binary, so the counters see every heap byte of the process.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Bytes allocated and not yet freed.
pub static LIVE: AtomicUsize = AtomicUsize::new(0);
/// The most `LIVE` has been (a test resets it to `LIVE` before what it measures).
pub static PEAK: AtomicUsize = AtomicUsize::new(0);
/// The largest single allocation (a test resets it to 0).
pub static LARGEST: AtomicUsize = AtomicUsize::new(0);
/// Allocations made.
pub static ALLOCS: AtomicUsize = AtomicUsize::new(0);

/// The system allocator with the counters above.
pub struct Counting;

// SAFETY: every call is forwarded to the system allocator unchanged; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        LARGEST.fetch_max(l.size(), Ordering::Relaxed);
        let now = LIVE.fetch_add(l.size(), Ordering::Relaxed) + l.size();
        PEAK.fetch_max(now, Ordering::Relaxed);
        // SAFETY: forwards GlobalAlloc::alloc's contract (a non-zero-size layout) to System.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        // SAFETY: `p` came from `alloc` above with layout `l` (GlobalAlloc::dealloc's contract).
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static A: Counting = Counting;
