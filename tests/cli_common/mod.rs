//! Helpers shared by the CLI tests: a temp dir, running the built binary, .npy and JSON files.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use npyz::WriterBuilder;
use serde_json::Value;

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "picardiff-cli-{}-{name}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    pub fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }
    pub fn arg(&self, file: &str) -> String {
        self.path(file).display().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn example(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
        .display()
        .to_string()
}

pub fn picardiff(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_picardiff"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("the picardiff binary runs")
}

/// Runs and expects success; returns stdout.
pub fn ok(args: &[&str], cwd: &Path) -> String {
    let out = picardiff(args, cwd);
    assert!(
        out.status.success(),
        "picardiff {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

pub fn read_npy(path: &Path) -> (Vec<u64>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap();
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
    assert_eq!(npy.dtype().descr(), "'<f4'");
    let shape = npy.shape().to_vec();
    (shape, npy.into_vec::<f32>().unwrap())
}

pub fn write_npy<T: npyz::AutoSerialize + Copy>(path: &Path, shape: &[u64], data: &[T]) {
    let mut buf = vec![];
    let mut w = npyz::WriteOptions::<T>::new()
        .default_dtype()
        .shape(shape)
        .writer(&mut buf)
        .begin_nd()
        .unwrap();
    w.extend(data.iter().copied()).unwrap();
    w.finish().unwrap();
    std::fs::write(path, buf).unwrap();
}

pub fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Deterministic pseudo-normal values (no RNG dependency needed).
pub fn values(n: usize, salt: u32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let h = (i as u32 ^ salt)
                .wrapping_mul(2_654_435_761)
                .rotate_left(13);
            (h % 20_000) as f32 / 10_000.0 - 1.0
        })
        .collect()
}

pub fn assert_one_line_error(args: &[&str], cwd: &Path, expect: &str) {
    let out = picardiff(args, cwd);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let code = out.status.code();
    assert!(
        code.is_some() && code != Some(0) && code != Some(101),
        "{args:?}: exit {code:?}, stderr {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    let lines: Vec<&str> = stderr.trim_end().lines().collect();
    assert_eq!(lines.len(), 1, "{args:?}: expected one line, got {stderr}");
    assert!(lines[0].starts_with("error: "), "{args:?}: {stderr}");
    assert!(
        lines[0].contains(expect),
        "{args:?}: `{}` does not mention `{expect}`",
        lines[0]
    );
}
