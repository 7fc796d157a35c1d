//! The C ABI on a CUDA context, through the `extern "C"` functions of `picardiff::ffi`: samples into
//! caller device memory (`picardiff_sampler_run_device`) equal the host-buffer run's bit for bit; a
//! callback model that receives device pointers and the run's stream (and evaluates on the host)
//! matches the same callback on the CPU; a failing callback, a host pointer given as the device
//! output and a device output that runs past its allocation are statuses; a LeRobot policy runs on
//! a CUDA context within 1e-3 of the CPU context's run. Without a device each test prints "skipped: no CUDA device (...)" and
//! passes; with `REQUIRE_GPU=1` it fails.
// Every unsafe block here calls the C ABI or the CUDA driver with pointers and lengths made just
// before from live Rust values (the tested contract itself), so the blocks carry no notes.
#![allow(clippy::undocumented_unsafe_blocks)]
#![cfg(feature = "cuda")]

mod gpu_common;

use std::ffi::{c_int, c_void};
use std::ptr::{null, null_mut};
use std::sync::atomic::{AtomicUsize, Ordering};

use cudarc::driver::{result, sys, DevicePtrMut};
use gpu_common::*;
use picardiff::backend::cuda::CudaBackend;
use picardiff::ffi::picardiff_status::*;
use picardiff::ffi::*;
use picardiff::prelude::*;

// ---- helpers -------------------------------------------------------------------------------------

fn last_error() -> String {
    let mut buf = vec![0u8; picardiff_last_error_len() + 1];
    let mut written = 0;
    let st = unsafe { picardiff_last_error(buf.as_mut_ptr().cast(), buf.len(), &mut written) };
    assert_eq!(st, PICARDIFF_OK);
    String::from_utf8(buf[..written].to_vec()).unwrap()
}

/// Asserts `st` is `want` and the last error mentions every one of `words`.
fn expect_err(st: picardiff_status, want: picardiff_status, words: &[&str]) {
    let msg = last_error();
    assert_eq!(st, want, "last error: {msg}");
    for w in words {
        assert!(msg.contains(w), "message {msg:?} does not mention {w:?}");
    }
    report(format!("  {want:?}: {msg}"));
}

/// A context, a model and a sampler, freed on drop.
struct Handles {
    ctx: *mut picardiff_context,
    model: *mut picardiff_model,
    sampler: *mut picardiff_sampler,
}

impl Handles {
    fn new(device: picardiff_device, model: *mut picardiff_model, steps: usize) -> Handles {
        let mut ctx = null_mut();
        let st = unsafe { picardiff_context_new(device as u32, 0, &mut ctx) };
        assert_eq!(st, PICARDIFF_OK, "{}", last_error());
        let mut d = u32::MAX;
        assert_eq!(
            unsafe { picardiff_context_device(ctx, &mut d) },
            PICARDIFF_OK
        );
        assert_eq!(
            d, device as u32,
            "the context is not on the device asked for"
        );
        let mut c = std::mem::MaybeUninit::uninit();
        assert_eq!(
            unsafe { picardiff_sampler_config_default(c.as_mut_ptr()) },
            PICARDIFF_OK
        );
        let mut c = unsafe { c.assume_init() };
        c.steps = steps;
        c.batch = 4;
        c.seed = 9;
        let mut sampler = null_mut();
        let st = unsafe { picardiff_sampler_new(ctx, &c, &mut sampler) };
        assert_eq!(st, PICARDIFF_OK, "{}", last_error());
        Handles {
            ctx,
            model,
            sampler,
        }
    }

    fn cuda(model: *mut picardiff_model, steps: usize) -> Handles {
        Handles::new(picardiff_device::PICARDIFF_DEVICE_CUDA, model, steps)
    }

    fn cpu(model: *mut picardiff_model, steps: usize) -> Handles {
        Handles::new(picardiff_device::PICARDIFF_DEVICE_CPU, model, steps)
    }

    /// batch × dim.
    fn out_len(&self) -> usize {
        let (mut batch, mut dim) = (0, 0);
        unsafe {
            assert_eq!(
                picardiff_sampler_shape(self.sampler, null_mut(), &mut batch),
                PICARDIFF_OK
            );
            assert_eq!(picardiff_model_dim(self.model, &mut dim), PICARDIFF_OK);
        }
        batch * dim
    }

    /// `picardiff_sampler_run` into a host buffer.
    fn run_host(&self) -> Result<(Vec<f32>, picardiff_stats), picardiff_status> {
        let n = self.out_len();
        let mut out = vec![f32::NAN; n];
        let mut st = picardiff_stats::default();
        match unsafe {
            picardiff_sampler_run(self.sampler, self.model, out.as_mut_ptr(), n, &mut st)
        } {
            PICARDIFF_OK => Ok((out, st)),
            s => Err(s),
        }
    }

    /// `picardiff_sampler_run_device` into `ptr` (`len` floats).
    fn run_device(&self, ptr: u64, len: usize) -> (picardiff_status, picardiff_stats) {
        let mut st = picardiff_stats::default();
        let s = unsafe {
            picardiff_sampler_run_device(self.sampler, self.model, ptr as *mut c_void, len, &mut st)
        };
        (s, st)
    }
}

impl Drop for Handles {
    fn drop(&mut self) {
        unsafe {
            picardiff_sampler_free(self.sampler);
            picardiff_model_free(self.model);
            picardiff_context_free(self.ctx);
        }
    }
}

/// The example mixtures, compiled in (the GPU machine runs the test binary without the sources).
const MIXTURE_2D: &str = include_str!("../examples/mixture_2d.json");
const MIXTURE_64D: &str = include_str!("../examples/mixture_64d.json");

fn mixture(json: &str) -> *mut picardiff_model {
    let mut m = null_mut();
    let st = unsafe { picardiff_model_new_mixture_json(json.as_ptr().cast(), json.len(), &mut m) };
    assert_eq!(st, PICARDIFF_OK, "{}", last_error());
    m
}

/// A zeroed buffer of `len` floats on `be`'s stream, the allocation finished (run_device does not
/// wait for other streams) and its device address.
fn device_zeros(be: &CudaBackend, len: usize) -> (cudarc::driver::CudaSlice<f32>, u64) {
    let mut buf = be.stream().alloc_zeros::<f32>(len).unwrap();
    be.synchronize().unwrap();
    let ptr = {
        let (p, _guard) = buf.device_ptr_mut(be.stream());
        p
    };
    (buf, ptr)
}

fn read_back(be: &CudaBackend, buf: &cudarc::driver::CudaSlice<f32>) -> Vec<f32> {
    let v = be.stream().clone_dtoh(buf).unwrap();
    be.synchronize().unwrap();
    v
}

// ---- a callback that evaluates the mixture on the host from device pointers ---------------------

/// `user_data` of [`host_gmm_eps`].
struct CallbackData {
    model: GmmModel,
    /// Returned instead of evaluating when non-zero.
    fail_with: c_int,
    /// Calls that came with a CUDA stream (device pointers).
    device_calls: AtomicUsize,
    /// Calls that came without one (host pointers).
    host_calls: AtomicUsize,
}

impl CallbackData {
    fn new(fail_with: c_int) -> Box<CallbackData> {
        let mixture = Mixture::from_json(MIXTURE_2D).unwrap();
        let schedule = Schedule::from_name("ddpm-linear", 1000).unwrap();
        Box::new(CallbackData {
            model: GmmModel::new(mixture, schedule),
            fail_with,
            device_calls: AtomicUsize::new(0),
            host_calls: AtomicUsize::new(0),
        })
    }

    fn model(&self) -> *mut picardiff_model {
        let mut m = null_mut();
        let st = unsafe {
            picardiff_model_new_callback(
                Some(host_gmm_eps),
                self as *const CallbackData as *mut c_void,
                2,
                picardiff_model_output::PICARDIFF_OUTPUT_EPSILON as u32,
                &mut m,
            )
        };
        assert_eq!(st, PICARDIFF_OK, "{}", last_error());
        m
    }

    /// ε of the mixture for `n` rows, on the host.
    fn eps(&self, x: &[f32], t: &[f32], n: usize) -> Option<Vec<f32>> {
        let mut out = vec![0f32; x.len()];
        let mut ws = ScoreModel::<CpuBackend>::workspace(&self.model, &CpuBackend, n).ok()?;
        self.model
            .eval(
                &CpuBackend,
                &mut ws,
                &x.to_vec(),
                &t.to_vec(),
                0,
                n,
                &mut out,
            )
            .ok()?;
        Some(out)
    }
}

/// The mixture's ε (`user_data` = `*const CallbackData`). With a stream (a CUDA context) `x`, `t`
/// and `out` are device pointers ordered on it: wait for it, copy `x` and `t` to the host with the
/// driver API, evaluate, copy the result back on the stream and wait for that copy before
/// returning (the host buffer dies here). Without one they are host pointers.
unsafe extern "C-unwind" fn host_gmm_eps(
    x: *const f32,
    t: *const f32,
    n: usize,
    dim: usize,
    out: *mut f32,
    ud: *mut c_void,
    stream: *mut c_void,
) -> c_int {
    let data = unsafe { &*(ud as *const CallbackData) };
    if data.fail_with != 0 {
        return data.fail_with;
    }
    if n == 0 {
        return 0;
    }
    if stream.is_null() {
        data.host_calls.fetch_add(1, Ordering::SeqCst);
        let xs = unsafe { std::slice::from_raw_parts(x, n * dim) };
        let ts = unsafe { std::slice::from_raw_parts(t, n) };
        let Some(o) = data.eps(xs, ts, n) else {
            return 104;
        };
        unsafe { std::ptr::copy_nonoverlapping(o.as_ptr(), out, n * dim) };
        return 0;
    }
    data.device_calls.fetch_add(1, Ordering::SeqCst);
    let s = stream as sys::CUstream;
    let (mut xs, mut ts) = (vec![0f32; n * dim], vec![0f32; n]);
    let fetched = unsafe {
        result::stream::synchronize(s).is_ok()
            && result::memcpy_dtoh_async(&mut xs, x as u64, s).is_ok()
            && result::memcpy_dtoh_async(&mut ts, t as u64, s).is_ok()
            && result::stream::synchronize(s).is_ok()
    };
    if !fetched {
        return 101;
    }
    let Some(o) = data.eps(&xs, &ts, n) else {
        return 104;
    };
    let stored = unsafe {
        result::memcpy_htod_async(out as u64, &o, s).is_ok()
            && result::stream::synchronize(s).is_ok()
    };
    if stored {
        0
    } else {
        103
    }
}

// ---- tests ---------------------------------------------------------------------------------------

#[test]
fn device_output_equals_the_host_buffer_run() {
    let Some(be) = device("device_output_equals_the_host_buffer_run") else {
        return;
    };
    let h = Handles::cuda(mixture(MIXTURE_64D), 100);
    let n = h.out_len();
    assert_eq!(n, 4 * 64);
    let (host, host_st) = h
        .run_host()
        .unwrap_or_else(|s| panic!("{s:?}: {}", last_error()));

    // A stream-ordered (pool) allocation of cudarc, written in the middle: guard floats either side.
    let (buf, base) = device_zeros(&be, n + 16);
    let (st, dev_st) = h.run_device(base + 8 * 4, n);
    assert_eq!(st, PICARDIFF_OK, "{}", last_error());
    let got = read_back(&be, &buf);
    assert!(got[..8].iter().chain(&got[n + 8..]).all(|&v| v == 0.0));
    assert_bits_eq(&host, &got[8..n + 8], "run_device (pool memory) vs run");
    assert_eq!(
        (dev_st.rounds, dev_st.nfe, dev_st.host_syncs),
        (host_st.rounds, host_st.nfe, host_st.host_syncs)
    );
    assert!(dev_st.wall_ms > 0.0);

    // A plain cuMemAlloc allocation.
    be.context().bind_to_thread().unwrap();
    let dptr = unsafe { result::malloc_sync(n * 4) }.unwrap();
    let (st, _) = h.run_device(dptr, n);
    let mut back = vec![f32::NAN; n];
    be.context().bind_to_thread().unwrap();
    unsafe { result::memcpy_dtoh_sync(&mut back, dptr) }.unwrap();
    unsafe { result::free_sync(dptr) }.unwrap();
    assert_eq!(st, PICARDIFF_OK, "{}", last_error());
    assert_bits_eq(&host, &back, "run_device (cuMemAlloc) vs run");

    // The wrong length is a shape error; nothing is written.
    let (buf, ptr) = device_zeros(&be, n);
    let (st, _) = h.run_device(ptr, n - 1);
    expect_err(
        st,
        PICARDIFF_SHAPE_MISMATCH,
        &["picardiff_sampler_run_device", "out_len"],
    );
    assert!(read_back(&be, &buf).iter().all(|&v| v == 0.0));

    // Against the CPU context (a different sweep implementation): close, for the record.
    let cpu = Handles::cpu(mixture(MIXTURE_64D), 100);
    let (cpu_out, cpu_st) = cpu.run_host().unwrap();
    report(format!(
        "run_device: {} rounds ({} on the CPU), max rel diff to the CPU {:e}",
        dev_st.rounds,
        cpu_st.rounds,
        max_rel_diff(&cpu_out, &host)
    ));
    assert!(max_rel_diff(&cpu_out, &host) <= 1e-4);
}

#[test]
fn device_callback_matches_the_cpu_callback() {
    let Some(be) = device("device_callback_matches_the_cpu_callback") else {
        return;
    };
    let cpu_data = CallbackData::new(0);
    let cpu = Handles::cpu(cpu_data.model(), 50);
    let (want, want_st) = cpu
        .run_host()
        .unwrap_or_else(|s| panic!("{s:?}: {}", last_error()));
    assert!(cpu_data.host_calls.load(Ordering::SeqCst) > 0);
    assert_eq!(cpu_data.device_calls.load(Ordering::SeqCst), 0);

    let gpu_data = CallbackData::new(0);
    let gpu = Handles::cuda(gpu_data.model(), 50);
    let n = gpu.out_len();
    let (host, host_st) = gpu
        .run_host()
        .unwrap_or_else(|s| panic!("{s:?}: {}", last_error()));
    let (buf, ptr) = device_zeros(&be, n);
    let (st, dev_st) = gpu.run_device(ptr, n);
    assert_eq!(st, PICARDIFF_OK, "{}", last_error());
    let got = read_back(&be, &buf);
    assert_bits_eq(&host, &got, "callback: run_device vs run");
    assert_eq!(gpu_data.host_calls.load(Ordering::SeqCst), 0);
    let calls = gpu_data.device_calls.load(Ordering::SeqCst);
    assert!(calls > 0, "the callback never got a stream");
    let diff = max_rel_diff(&want, &got);
    report(format!(
        "cuda callback: {calls} calls, rounds gpu {} / {} cpu {}, max rel diff to the cpu callback {diff:e}",
        host_st.rounds, dev_st.rounds, want_st.rounds
    ));
    assert!(
        diff <= 1e-5,
        "cuda callback samples differ from the cpu's by {diff}"
    );
}

#[test]
fn failing_device_callback_is_a_status() {
    let Some(be) = device("failing_device_callback_is_a_status") else {
        return;
    };
    let data = CallbackData::new(42);
    let h = Handles::cuda(data.model(), 50);
    let n = h.out_len();
    expect_err(
        h.run_host().unwrap_err(),
        PICARDIFF_CALLBACK_FAILED,
        &["picardiff_sampler_run", "returned 42"],
    );
    let (buf, ptr) = device_zeros(&be, n);
    let (st, _) = h.run_device(ptr, n);
    expect_err(
        st,
        PICARDIFF_CALLBACK_FAILED,
        &["picardiff_sampler_run_device", "returned 42"],
    );
    assert!(read_back(&be, &buf).iter().all(|&v| v == 0.0));
    // The context's stream is still usable.
    let ok = Handles::cuda(mixture(MIXTURE_2D), 50);
    assert!(ok.run_host().is_ok(), "{}", last_error());
}

#[test]
fn host_memory_as_device_output_is_a_status() {
    let Some(be) = device("host_memory_as_device_output_is_a_status") else {
        return;
    };
    let h = Handles::cuda(mixture(MIXTURE_2D), 50);
    let n = h.out_len();
    // Pageable host memory: unknown to the driver.
    let mut host = vec![f32::NAN; n];
    let (st, _) = h.run_device(host.as_mut_ptr() as u64, n);
    expect_err(
        st,
        PICARDIFF_INVALID_ARGUMENT,
        &[
            "picardiff_sampler_run_device",
            "out_device",
            "not device memory",
        ],
    );
    assert!(host.iter().all(|v| v.is_nan()), "host memory written");
    // Pinned host memory: known to the driver, but host memory.
    be.context().bind_to_thread().unwrap();
    let pinned = unsafe { result::malloc_host(n * 4, 0) }.unwrap();
    let (st, _) = h.run_device(pinned as u64, n);
    unsafe { result::free_host(pinned) }.unwrap();
    expect_err(
        st,
        PICARDIFF_INVALID_ARGUMENT,
        &["out_device", "pinned host memory"],
    );
    // A device pointer that is not aligned to a float.
    let (_buf, ptr) = device_zeros(&be, n + 1);
    let (st, _) = h.run_device(ptr + 1, n);
    expect_err(st, PICARDIFF_INVALID_ARGUMENT, &["aligned"]);
    // NULL.
    let mut s = picardiff_stats::default();
    let st = unsafe { picardiff_sampler_run_device(h.sampler, h.model, null_mut(), n, &mut s) };
    expect_err(st, PICARDIFF_NULL_ARGUMENT, &["out_device"]);
    let st =
        unsafe { picardiff_sampler_run_device(null(), h.model, ptr as *mut c_void, n, &mut s) };
    expect_err(st, PICARDIFF_NULL_ARGUMENT, &["sampler"]);
    // After all that, a correct call works.
    let (buf, ptr) = device_zeros(&be, n);
    let (st, _) = h.run_device(ptr, n);
    assert_eq!(st, PICARDIFF_OK, "{}", last_error());
    assert!(read_back(&be, &buf).iter().all(|v| v.is_finite()));
}

/// The extent the driver reports for the allocation that holds `ptr` (`cuMemGetAddressRange`).
fn allocation_range(be: &CudaBackend, ptr: u64) -> (u64, u64) {
    be.context().bind_to_thread().unwrap();
    let (mut base, mut size) = (0u64, 0usize);
    let r = unsafe { sys::cuMemGetAddressRange_v2(&mut base, &mut size, ptr) };
    assert_eq!(r, sys::CUresult::CUDA_SUCCESS, "cuMemGetAddressRange");
    (base, size as u64)
}

/// `picardiff_sampler_run_device` checks the floats to write against the extent of the
/// allocation that holds `out_device`: for a cuMemAlloc (cudaMalloc) allocation, a stream-ordered
/// pool allocation and managed memory, the last `out_len` floats of the reported extent are
/// accepted (and equal the host run's), one float later is PICARDIFF_SHAPE_MISMATCH before
/// anything runs (nothing written).
#[test]
fn device_output_past_its_allocation_is_a_shape_mismatch() {
    let Some(be) = device("device_output_past_its_allocation_is_a_shape_mismatch") else {
        return;
    };
    let h = Handles::cuda(mixture(MIXTURE_2D), 50);
    let n = h.out_len();
    let bytes = (n * 4) as u64;
    let (host, _) = h
        .run_host()
        .unwrap_or_else(|s| panic!("{s:?}: {}", last_error()));
    be.context().bind_to_thread().unwrap();
    let plain = unsafe { result::malloc_sync(n * 4) }.unwrap();
    let managed =
        unsafe { result::malloc_managed(n * 4, sys::CUmemAttach_flags::CU_MEM_ATTACH_GLOBAL) }
            .unwrap();
    let (_pool_buf, pool) = device_zeros(&be, n);
    for (what, ptr) in [("cuMemAlloc", plain), ("pool", pool), ("managed", managed)] {
        let (base, size) = allocation_range(&be, ptr);
        report(format!(
            "  {what}: {bytes} bytes asked, extent {size} bytes at {base:#x} (pointer {ptr:#x})"
        ));
        assert!(base <= ptr && ptr + bytes <= base + size, "{what}: extent");
        let last = base + size - bytes; // the last n floats of the extent
                                        // A pool may report a range larger than this allocation (memory of other buffers): write
                                        // only inside our own allocation there; cuMemAlloc and managed extents are ours.
        let own = what != "pool" || (base == ptr && size == bytes);
        if own {
            be.context().bind_to_thread().unwrap();
            unsafe { result::memset_d8_sync(base, 0, size as usize) }.unwrap();
            let (st, _) = h.run_device(last, n);
            assert_eq!(st, PICARDIFF_OK, "{what}: {}", last_error());
            let mut back = vec![f32::NAN; n];
            be.context().bind_to_thread().unwrap();
            unsafe { result::memcpy_dtoh_sync(&mut back, last) }.unwrap();
            assert_bits_eq(
                &host,
                &back,
                &format!("run_device ({what}, end of extent) vs run"),
            );
            unsafe { result::memset_d8_sync(base, 0, size as usize) }.unwrap();
        }
        // One float later: 4 bytes past the end. Refused before the run: nothing written.
        let (st, _) = h.run_device(last + 4, n);
        expect_err(
            st,
            PICARDIFF_SHAPE_MISMATCH,
            &[
                "picardiff_sampler_run_device",
                "out_device",
                "4 bytes short",
            ],
        );
        if own {
            let mut all = vec![f32::NAN; (size / 4) as usize];
            be.context().bind_to_thread().unwrap();
            unsafe { result::memcpy_dtoh_sync(&mut all, base) }.unwrap();
            assert!(
                all.iter().all(|&v| v == 0.0),
                "{what}: written after a refusal"
            );
        }
    }
    be.context().bind_to_thread().unwrap();
    unsafe { result::free_sync(plain) }.unwrap();
    unsafe { result::free_sync(managed) }.unwrap();
}

/// A LeRobot policy (its own DDIM-10 scheduler, clipping on) through `picardiff_sampler_run_cond`
/// with Picard at τ = 0 on a CUDA context ends within 1e-3 (relative, the GPU tolerance)
/// of the same run on a CPU context. The fixture is opened relative to the repo root.
#[test]
fn policy_runs_on_a_cuda_context() {
    let Some(_be) = device("policy_runs_on_a_cuda_context") else {
        return;
    };
    let run = |device: picardiff_device| -> Vec<f32> {
        let mut ctx = null_mut();
        let st = unsafe { picardiff_context_new(device as u32, 0, &mut ctx) };
        assert_eq!(st, PICARDIFF_OK, "{}", last_error());
        let path = std::ffi::CString::new("tests/data/lerobot/film_bias_k3_g4").unwrap();
        let mut model = null_mut();
        let st = unsafe { picardiff_model_new_file(path.as_ptr(), &mut model) };
        assert_eq!(st, PICARDIFF_OK, "{}", last_error());
        let cfg = picardiff_sampler_config {
            batch: 3,
            seed: 5,
            tol: 0.0,
            ..Default::default()
        };
        let mut sampler = null_mut();
        let st = unsafe { picardiff_sampler_new(ctx, &cfg, &mut sampler) };
        assert_eq!(st, PICARDIFF_OK, "{}", last_error());
        // Frees the three handles at the end of the closure.
        let h = Handles {
            ctx,
            model,
            sampler,
        };
        let mut g = 0;
        assert_eq!(
            unsafe { picardiff_model_cond_dim(h.model, &mut g) },
            PICARDIFF_OK
        );
        let cond: Vec<f32> = (0..3 * g).map(|i| (i as f32 * 0.37).sin()).collect();
        let mut out = vec![f32::NAN; h.out_len()];
        let st = unsafe {
            picardiff_sampler_run_cond(
                h.sampler,
                h.model,
                cond.as_ptr(),
                cond.len(),
                null(),
                0,
                null(),
                0,
                out.as_mut_ptr(),
                out.len(),
                null_mut(),
            )
        };
        assert_eq!(st, PICARDIFF_OK, "{}", last_error());
        out
    };
    let cpu = run(picardiff_device::PICARDIFF_DEVICE_CPU);
    let gpu = run(picardiff_device::PICARDIFF_DEVICE_CUDA);
    let d = max_rel_diff(&cpu, &gpu);
    report(format!(
        "policy through the C ABI: CUDA vs CPU max rel diff {d:e}"
    ));
    assert!(d < 1e-3, "policy on CUDA vs CPU: {d:e}");
}
