//! The CUDA backend (feature `cuda`): cudarc for the context, stream, device buffers and cuBLAS; the
//! fused kernels of `kernels/*.cu` (compiled by build.rs) through the C launchers of
//! `kernels/picardiff_kernels.h`.
//!
//! - [`CudaBackend`] owns one CUDA context (the device's primary context, shared with the static CUDA
//!   runtime that launches the kernels), ONE non-blocking stream on which everything is ordered, and
//!   a cuBLAS handle bound to that stream. Buffers are `CudaSlice<f32>` allocated by the backend; a
//!   buffer from another backend or stream is rejected with [`Error::Device`].
//! - The Picard window state lives in device memory ([`CudaWindow`]): an iteration (model call,
//!   sweep, advance, new slots) is enqueued without any host synchronisation, and the host reads the
//!   state back at the completion checks (at most every
//!   [`Backend::sync_interval`](crate::backend::Backend::sync_interval) iterations). The model
//!   evaluates the points from the start seen at the last check to the end (the whole ring while
//!   they do not fit in it), so shapes change only at checks, and an iteration is recorded once per
//!   shape into a CUDA graph and replayed ([`Backend::iteration`](crate::backend::Backend::iteration)).
//!   A capture records everything enqueued on the stream, whichever thread enqueues it, so every
//!   backend method and CUDA model call that enqueues work takes the backend's re-entrant run lock,
//!   and a sampler run holds it throughout: threads sharing a backend sample one after the other
//!   (the stream orders their GPU work anyway); for concurrent runs give each thread its own
//!   backend (its own stream). One thing the lock cannot cover: dropping a backend's buffer frees
//!   it on the stream (cudarc's `Drop`), so do not drop a shared backend's buffers on one thread
//!   while another samples on it.
//! - Models run on it through its safe primitives: [`CudaBackend::gemm`] (row-major cuBLAS SGEMM),
//!   the kernel wrappers (`launch.rs`, `mixture.rs`, `dense.rs`, `ops.rs`) and `Ops`. This module
//!   never names a model: each model's device half lives with the model in `crate::model`.
//!
//! Only this module touches the FFI: one safe wrapper per launcher in `launch.rs`, each validating
//! every size it passes and carrying a `// SAFETY:` note.

mod backend;
mod dense;
pub mod external;
mod ffi;
mod gemm;
mod graph;
pub(crate) mod launch;
mod mixture;
mod ops;
mod ops_kernels;
mod pool;
mod tables;

use std::ffi::CStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use cudarc::cublas::result::CublasError;
use cudarc::cublas::CudaBlas;
use cudarc::driver::sys::{CUmemPool_attribute, CUmemoryPool};
use cudarc::driver::{CudaContext, CudaSlice, CudaStream, DevicePtr, DevicePtrMut, DriverError};

use crate::backend::{RunGuard, RunLock};
use crate::error::{DeviceCode, Error, Result};

pub use backend::{CudaSeq, CudaWindow};
pub use dense::{DevWeight, GemmIn};
pub use gemm::{MatMut, MatRef};
pub use mixture::{schedule_table, MixtureBuffers};
pub use tables::CudaTables;

/// The CUDA backend on one device. See the module docs.
#[derive(Debug)]
pub struct CudaBackend {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    /// cuBLAS handles must not be used by two host threads at once: calls hold this lock.
    blas: Mutex<CudaBlas>,
    /// The device's stream-ordered memory pool (cudarc allocates from it when the driver has one);
    /// it keeps freed memory for reuse. Stored as an address: the handle is a driver object any
    /// thread may query, and a raw pointer field would make the backend neither Send nor Sync.
    pool: Option<usize>,
    /// Whether Picard iterations are recorded into CUDA graphs ([`CudaBackend::set_graphs`]).
    graphs: AtomicBool,
    /// Why recording was turned off after a refused capture, if it was.
    graph_refusal: Mutex<Option<String>>,
    /// Serialises sampler runs ([`Backend::run_guard`](crate::backend::Backend::run_guard)).
    run_lock: RunLock,
    /// Lives exactly as long as the backend: caches that hold device memory for it (a model's
    /// uploaded weights) keep a `Weak` and drop their entry once this is gone.
    alive: Arc<()>,
}

/// The locked cuBLAS handle of a [`CudaBackend`] ([`CudaBackend::blas`]); dereferences to it.
pub struct BlasGuard<'a> {
    // Fields drop in order: the handle's mutex before the run lock.
    blas: MutexGuard<'a, CudaBlas>,
    _run: RunGuard<'a>,
}

impl std::ops::Deref for BlasGuard<'_> {
    type Target = CudaBlas;
    fn deref(&self) -> &CudaBlas {
        &self.blas
    }
}

impl CudaBackend {
    /// Opens device `ordinal`. Returns [`Error::Device`] (never panics) when the NVIDIA driver
    /// library (libcuda) or libcublas cannot be loaded, when there is no such device, or when the
    /// context, stream or cuBLAS handle cannot be created.
    pub fn new(ordinal: usize) -> Result<Self> {
        // SAFETY: these only try to dlopen the libraries (cudarc panics later if they are absent).
        if !unsafe { cudarc::driver::sys::is_culib_present() } {
            return Err(Error::device(
                "open",
                "libcuda (the NVIDIA driver library) not found: no NVIDIA driver on this machine",
            ));
        }
        // SAFETY: as above.
        if !unsafe { cudarc::cublas::sys::is_culib_present() } {
            return Err(Error::device(
                "open",
                "libcublas not found: install the CUDA 13 cuBLAS library (e.g. the \
                 nvidia-cublas wheel or /usr/local/cuda/lib64) and put it on LD_LIBRARY_PATH",
            ));
        }
        let count = CudaContext::device_count().during("open (device count)")?;
        if ordinal >= count.max(0) as usize {
            return Err(Error::device(
                "open",
                format!("no CUDA device {ordinal}: {count} device(s) present"),
            ));
        }
        let ctx = CudaContext::new(ordinal).during("open (context)")?;
        // SAFETY: every buffer of this backend is allocated, used and freed on its one stream, so
        // stream order already serialises all accesses; cudarc's cross-stream events are not needed.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.new_stream().during("open (stream)")?;
        let blas = CudaBlas::new(stream.clone()).during("open (cuBLAS handle)")?;
        // SAFETY: the device handle comes from the live context.
        let pool = ctx
            .has_async_alloc()
            .then(|| unsafe { cudarc::driver::result::device::get_mem_pool(ctx.cu_device()) }.ok())
            .flatten();
        if let Some(pool) = pool {
            // SAFETY: the device's current pool, the context current on this thread (new_stream);
            // nothing after this can fail, so the backend built below releases it when dropped.
            unsafe { pool::acquire(pool) };
        }
        let pool = pool.map(|p| p as usize);
        Ok(CudaBackend {
            ctx,
            stream,
            blas: Mutex::new(blas),
            pool,
            graphs: AtomicBool::new(std::env::var("PICARDIFF_CUDA_GRAPHS").as_deref() != Ok("0")),
            graph_refusal: Mutex::new(None),
            run_lock: RunLock::default(),
            alive: Arc::new(()),
        })
    }

    /// Holds the backend's run lock (re-entrant on this thread): every method that puts work on
    /// the stream takes it, so that no other thread's work lands in a graph a run is recording
    /// (work enqueued on a capturing stream is captured whichever thread enqueues it).
    pub(crate) fn exclusive(&self) -> RunGuard<'_> {
        self.run_lock.lock()
    }

    /// A token that dies with this backend (see the `alive` field).
    pub(crate) fn liveness(&self) -> Weak<()> {
        Arc::downgrade(&self.alive)
    }

    /// Turns the recording of Picard iterations into CUDA graphs on or off (default: on, unless
    /// the environment sets `PICARDIFF_CUDA_GRAPHS=0`). Off, every iteration enqueues its kernels
    /// and GEMMs one by one; the results are the same bit for bit.
    pub fn set_graphs(&self, on: bool) {
        self.graphs.store(on, Ordering::Relaxed);
    }

    /// Whether Picard iterations are recorded into CUDA graphs.
    pub fn graphs_enabled(&self) -> bool {
        self.graphs.load(Ordering::Relaxed)
    }

    /// The driver's or cuBLAS's reason, if a capture was refused and graphs were turned off.
    pub fn graph_refusal(&self) -> Option<String> {
        self.graph_refusal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn disable_graphs(&self, why: &str) {
        self.set_graphs(false);
        *self.graph_refusal.lock().unwrap_or_else(|p| p.into_inner()) = Some(why.to_string());
    }

    /// Memory this process can still allocate, in bytes: the driver's free memory plus what the
    /// memory pool holds reserved but unused (freed by earlier runs, kept for reuse).
    pub fn available_memory(&self) -> Result<usize> {
        let (free, _total) = self.ctx.mem_get_info().during("memory info")?;
        let Some(pool) = self.pool.map(|p| p as CUmemoryPool) else {
            return Ok(free);
        };
        let attr = |a: CUmemPool_attribute| -> Result<u64> {
            let mut v = 0u64;
            // SAFETY: RESERVED/USED_MEM_CURRENT are u64 attributes of a live pool.
            unsafe {
                cudarc::driver::result::mem_pool::get_attribute(
                    pool,
                    a,
                    (&mut v as *mut u64).cast(),
                )
            }
            .during("memory pool info")?;
            Ok(v)
        };
        let reserved = attr(CUmemPool_attribute::CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT)?;
        let used = attr(CUmemPool_attribute::CU_MEMPOOL_ATTR_USED_MEM_CURRENT)?;
        Ok(free.saturating_add(reserved.saturating_sub(used) as usize))
    }

    /// The device's name, e.g. "NVIDIA H100 80GB HBM3".
    pub fn device_name(&self) -> Result<String> {
        self.ctx.name().during("device name")
    }

    /// The cudarc context.
    pub fn context(&self) -> &Arc<CudaContext> {
        &self.ctx
    }

    /// The stream all work of this backend is ordered on. Work a caller enqueues on it directly
    /// bypasses the run lock: do it only on a thread that is not sharing the backend with a run.
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// The cuBLAS handle (bound to [`CudaBackend::stream`]), locked for the caller: a handle must
    /// not be used by two host threads at once. The guard also holds the backend's run lock, taken
    /// first (the order every path in the crate uses), so a GEMM never lands in another thread's
    /// capture and holding the handle cannot deadlock against a run.
    pub fn blas(&self) -> BlasGuard<'_> {
        let run = self.exclusive();
        let blas = self
            .blas
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        BlasGuard { blas, _run: run }
    }

    /// Waits for all work enqueued so far and reports any asynchronous error.
    pub fn synchronize(&self) -> Result<()> {
        let _exclusive = self.exclusive();
        self.stream.synchronize().during("synchronize")?;
        self.ctx.check_err().during("synchronize")
    }

    /// Makes the context current on the calling thread (the runtime launchers and cuBLAS use the
    /// thread's current context).
    fn bind(&self, op: &str) -> Result<()> {
        self.ctx.bind_to_thread().during(op)
    }

    /// Checks that `buf` was allocated by this backend (same stream) and holds at least `need`
    /// elements; the device address of its first element.
    fn ptr<T>(&self, buf: &CudaSlice<T>, need: usize, op: &str, what: &str) -> Result<u64> {
        self.owns(buf.stream(), op)?;
        if buf.len() < need {
            return Err(Error::shape(
                op,
                format!("{what}: need {need} values, the buffer has {}", buf.len()),
            ));
        }
        // The returned guard records no event (event tracking is off for this context).
        let (p, _guard) = buf.device_ptr(&self.stream);
        Ok(p)
    }

    /// [`CudaBackend::ptr`] for a buffer the device will write.
    fn ptr_mut<T>(&self, buf: &mut CudaSlice<T>, need: usize, op: &str, what: &str) -> Result<u64> {
        self.owns(buf.stream(), op)?;
        if buf.len() < need {
            return Err(Error::shape(
                op,
                format!("{what}: need {need} values, the buffer has {}", buf.len()),
            ));
        }
        let (p, _guard) = buf.device_ptr_mut(&self.stream);
        Ok(p)
    }

    fn owns(&self, stream: &Arc<CudaStream>, op: &str) -> Result<()> {
        if Arc::ptr_eq(stream, &self.stream) || **stream == *self.stream {
            Ok(())
        } else {
            Err(Error::device(
                op,
                "buffer was not allocated by this CUDA backend (use its alloc/upload)",
            ))
        }
    }
}

impl Drop for CudaBackend {
    /// Waits for the stream and unregisters from the device's pool (`pool`: the last backend of the
    /// process restores the pool's release threshold; memory above it goes back to the driver at
    /// the next synchronisation).
    fn drop(&mut self) {
        let _ = self.stream.synchronize();
        if let Some(pool) = self.pool.map(|p| p as CUmemoryPool) {
            if self.ctx.bind_to_thread().is_ok() {
                // SAFETY: the device's pool, registered by `new`, outlives this call.
                unsafe { pool::release(pool) };
            }
        }
    }
}

/// Attaches an operation name to cudarc errors, turning them into [`Error::Device`].
pub trait DeviceResultExt<T> {
    /// The error as [`Error::Device`] for operation `op`.
    fn during(self, op: &str) -> Result<T>;
}

impl<T> DeviceResultExt<T> for std::result::Result<T, DriverError> {
    fn during(self, op: &str) -> Result<T> {
        self.map_err(|e| driver_error(op, &e))
    }
}

impl<T> DeviceResultExt<T> for std::result::Result<T, CublasError> {
    fn during(self, op: &str) -> Result<T> {
        self.map_err(|e| blas_error(op, &e))
    }
}

/// A driver error for `op`, with its message and its `CUresult` code.
fn driver_error(op: &str, e: &DriverError) -> Error {
    // A DriverError only exists once libcuda is loaded, so asking it for the message is safe.
    let msg = match e.error_string() {
        Ok(s) => format!("{:?}: {}", e.0, s.to_string_lossy()),
        Err(_) => format!("{:?}", e.0),
    };
    Error::device_code(op, msg, DeviceCode::Driver(e.0 as u32))
}

/// A cuBLAS error for `op`, with its `cublasStatus_t` code.
fn blas_error(op: &str, e: &CublasError) -> Error {
    Error::device_code(
        op,
        format!("cuBLAS: {:?}", e.0),
        DeviceCode::Blas(e.0 as u32),
    )
}

impl From<DriverError> for Error {
    fn from(e: DriverError) -> Self {
        driver_error("cuda driver", &e)
    }
}

impl From<CublasError> for Error {
    fn from(e: CublasError) -> Self {
        blas_error("cublas", &e)
    }
}

/// A `cudaError_t` returned by a kernel launcher (0 = success).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CudaRuntimeError(pub i32);

impl CudaRuntimeError {
    /// The runtime's description of the code.
    pub fn message(self) -> String {
        // SAFETY: cudaGetErrorString returns a pointer to a static NUL-terminated string for every
        // code (an "unrecognized error code" string for unknown ones).
        unsafe { CStr::from_ptr(ffi::picardiff_cuda_error_string(self.0)) }
            .to_string_lossy()
            .into_owned()
    }
}

impl CudaRuntimeError {
    /// The error for `op`, with the runtime's message and code.
    fn during(self, op: &str) -> Error {
        Error::device_code(
            op,
            format!("cudaError {}: {}", self.0, self.message()),
            DeviceCode::Runtime(self.0),
        )
    }
}

impl From<CudaRuntimeError> for Error {
    fn from(e: CudaRuntimeError) -> Self {
        e.during("kernel launch")
    }
}

/// `Ok` for `cudaSuccess`, else [`Error::Device`] for `op` with the runtime's message.
fn check(code: ffi::cudaError_t, op: &str) -> Result<()> {
    if code == 0 {
        Ok(())
    } else {
        Err(CudaRuntimeError(code).during(op))
    }
}

#[cfg(test)]
mod tests {
    /// The backend is shared across threads by the samplers' callers (and the C ABI's contexts).
    #[test]
    fn backend_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<super::CudaBackend>();
    }
}
