//! Host memory: how much is free (the machine's and the process's cgroup's), and allocation that
//! fails with an out-of-memory error, never an abort.

use crate::error::{DeviceCode, Error, Result};

/// `len` copies of `value`, or an out-of-memory [`Error::Device`] naming `what` when the host
/// cannot hold them.
pub fn filled<T: Clone>(len: usize, value: T, what: &str) -> Result<Vec<T>> {
    let mut out = Vec::new();
    out.try_reserve_exact(len).map_err(|_| {
        Error::device_code(
            "allocate",
            format!("cannot allocate the {len}-value {what} on the host"),
            DeviceCode::InsufficientMemory,
        )
    })?;
    out.resize(len, value);
    Ok(out)
}

/// The smaller of `MemAvailable` (/proc/meminfo) and what the process's cgroup still allows
/// (its limit minus its usage, [`cgroup_free`]), on Linux; None where neither is known.
pub fn free_bytes() -> Option<usize> {
    let available = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
            let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib.saturating_mul(1024))
        });
    match (available, cgroup_free()) {
        (Some(a), Some(c)) => Some(a.min(c)),
        (a, c) => a.or(c),
    }
}

/// Bytes the process's memory cgroup still allows: its limit minus its usage, from cgroup v2
/// (`/sys/fs/cgroup/memory.max`, `memory.current`) or v1 (`memory/memory.limit_in_bytes`,
/// `memory.usage_in_bytes`). None without a limit (`max`, or v1's huge "unlimited" value).
pub fn cgroup_free() -> Option<usize> {
    let read = |p: &str| std::fs::read_to_string(p).ok();
    let num = |s: String| s.trim().parse::<u64>().ok();
    let (limit, usage) = match read("/sys/fs/cgroup/memory.max") {
        Some(max) => (
            num(max)?,
            read("/sys/fs/cgroup/memory.current").and_then(num),
        ),
        None => (
            read("/sys/fs/cgroup/memory/memory.limit_in_bytes").and_then(num)?,
            read("/sys/fs/cgroup/memory/memory.usage_in_bytes").and_then(num),
        ),
    };
    // v1 reports "no limit" as a page-rounded i64::MAX.
    if limit >= 1 << 60 {
        return None;
    }
    let free = limit.saturating_sub(usage.unwrap_or(0));
    Some(usize::try_from(free).unwrap_or(usize::MAX))
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_impossible_size_is_an_out_of_memory_error() {
        let e = super::filled(usize::MAX / 2, 0f32, "test buffer").unwrap_err();
        assert!(e.is_out_of_memory(), "{e}");
        assert!(e.to_string().contains("test buffer"), "{e}");
        assert_eq!(super::filled(3, 1u8, "x").unwrap(), vec![1, 1, 1]);
    }
}
