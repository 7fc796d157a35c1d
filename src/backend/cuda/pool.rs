//! The device's stream-ordered memory pool, shared by the whole process (cudarc allocates from it).
//! While a [`CudaBackend`](super::CudaBackend) is alive on a device, the pool keeps up to
//! [`POOL_KEEP`] bytes of freed memory for reuse (a run's buffers are then not re-mapped by the next
//! run), or more if the application had set more; the last backend of the process on that pool to
//! be dropped restores the threshold the pool had before the first one raised it. Best effort:
//! a pool that refuses keeps its own setting.

use std::sync::Mutex;

use cudarc::driver::result::mem_pool;
use cudarc::driver::sys::{CUmemPool_attribute, CUmemoryPool};

/// Freed memory the pool keeps for reuse while a backend is alive (a run's ring buffers and MLP
/// scratch, typically a few to a few tens of MiB).
const POOL_KEEP: u64 = 64 << 20;

/// Per pool (as an address): the live backends and the release threshold before the first of them.
static USERS: Mutex<Vec<(usize, usize, u64)>> = Mutex::new(Vec::new());

const THRESHOLD: CUmemPool_attribute = CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD;

/// The pool's release threshold.
///
/// # Safety
/// `pool` is a live memory pool.
unsafe fn threshold(pool: CUmemoryPool) -> Option<u64> {
    let mut v = 0u64;
    // SAFETY: `pool` is live (the caller's contract) and `v` is a u64, the attribute's type.
    unsafe { mem_pool::get_attribute(pool, THRESHOLD, (&mut v as *mut u64).cast()) }.ok()?;
    Some(v)
}

/// Sets the pool's release threshold (ignoring a refusal).
///
/// # Safety
/// `pool` is a live memory pool.
unsafe fn set_threshold(pool: CUmemoryPool, mut v: u64) {
    // SAFETY: `pool` is live (the caller's contract) and `v` is a u64, the attribute's type.
    let _ = unsafe { mem_pool::set_attribute(pool, THRESHOLD, (&mut v as *mut u64).cast()) };
}

/// Registers a backend on `pool`: the first one raises the threshold to at least [`POOL_KEEP`].
///
/// # Safety
/// `pool` is a live memory pool (the device's current pool, its context current on this thread).
pub(super) unsafe fn acquire(pool: CUmemoryPool) {
    let mut users = USERS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(u) = users.iter_mut().find(|u| u.0 == pool as usize) {
        u.1 += 1;
        return;
    }
    // SAFETY: `pool` is live (this function's contract).
    let before = unsafe { threshold(pool) }.unwrap_or(0);
    if before < POOL_KEEP {
        // SAFETY: as above.
        unsafe { set_threshold(pool, POOL_KEEP) };
    }
    users.push((pool as usize, 1, before));
}

/// Unregisters a backend from `pool`: the last one restores the threshold from before the first,
/// unless the application has changed it since.
///
/// # Safety
/// As [`acquire`], for a pool `acquire` registered.
pub(super) unsafe fn release(pool: CUmemoryPool) {
    let mut users = USERS.lock().unwrap_or_else(|p| p.into_inner());
    let Some(i) = users.iter().position(|u| u.0 == pool as usize) else {
        return;
    };
    users[i].1 -= 1;
    if users[i].1 == 0 {
        let (_, _, before) = users.swap_remove(i);
        // Only undo our own setting: a threshold the application changed meanwhile stays.
        // SAFETY: `pool` is live (this function's contract).
        if before < POOL_KEEP && unsafe { threshold(pool) } == Some(POOL_KEEP) {
            // SAFETY: as above.
            unsafe { set_threshold(pool, before) };
        }
    }
}
