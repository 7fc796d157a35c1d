//! Output files (`--out`, `--stats`, `bench --json`/`--markdown`): checked before a run, written
//! atomically after it. A file is written to a temporary file in its directory, synced and renamed
//! over the target, so a failed or interrupted write never destroys what was there; the paths are
//! validated first (a probe file is created and removed in the target directory), so a long run
//! does not end in an unwritable output.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{CliError, CliResult};

/// The file a write to `path` replaces: `path` itself, or for a symbolic link to an existing file
/// the file it points to (renaming over the link would replace the link, not its file). Errors
/// for a path that names a directory (or ends in `/`), a dangling link, or a missing directory.
fn target(path: &Path, what: &str) -> CliResult<PathBuf> {
    let err = |msg: String| CliError::new(format!("{what} `{}`: {msg}", path.display()));
    let text = path.as_os_str().to_string_lossy();
    if text.is_empty() {
        return Err(CliError::new(format!("{what}: the path is empty")));
    }
    if text.ends_with('/') || path.file_name().is_none() {
        return Err(err("names a directory, not a file".into()));
    }
    let path = match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => match std::fs::canonicalize(path) {
            Ok(t) => t,
            Err(_) => return Err(err("is a dangling symbolic link".into())),
        },
        _ => path.to_path_buf(),
    };
    if path.is_dir() {
        return Err(err("is a directory".into()));
    }
    if path.exists() && !path.is_file() {
        return Err(err("is not a regular file".into()));
    }
    Ok(path)
}

/// The directory of `path` (`.` for a bare file name).
fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// A fresh temporary name next to `path`.
fn temp_name(path: &Path, kind: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dir_of(path).join(format!(
        ".{name}.picardiff-{kind}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Checks, before a run, that `path` can be written: not a directory, a trailing `/` or a
/// dangling link, in an existing directory where a file can be created (a probe file is created
/// and removed). Returns the file a write will replace (see [`write_atomic`]).
pub fn check(path: &Path, what: &str) -> CliResult<PathBuf> {
    let target = target(path, what)?;
    let dir = dir_of(&target);
    let err = |msg: String| CliError::new(format!("{what} `{}`: {msg}", path.display()));
    if !dir.is_dir() {
        return Err(err(format!("directory `{}` does not exist", dir.display())));
    }
    let probe = temp_name(&target, "probe");
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .map_err(|e| err(format!("cannot create a file in `{}`: {e}", dir.display())))?;
    let _ = std::fs::remove_file(&probe);
    Ok(target)
}

/// The identity of an output path for comparing two options: the file a write replaces, with its
/// directory made absolute and free of links.
fn identity(path: &Path) -> PathBuf {
    let t = target(path, "").unwrap_or_else(|_| path.to_path_buf());
    match (std::fs::canonicalize(dir_of(&t)), t.file_name()) {
        (Ok(d), Some(name)) => d.join(name),
        _ => t,
    }
}

/// Refuses two output options that name the same file (the second write would replace the first).
pub fn distinct(outputs: &[(Option<&Path>, &str)]) -> CliResult<()> {
    let given: Vec<(PathBuf, &str)> = outputs
        .iter()
        .filter_map(|(p, what)| p.map(|p| (identity(p), *what)))
        .collect();
    for (i, (a, wa)) in given.iter().enumerate() {
        if let Some((_, wb)) = given[i + 1..].iter().find(|(b, _)| b == a) {
            return Err(CliError::new(format!(
                "{wa} and {wb} name the same file `{}`; give them different paths",
                a.display()
            )));
        }
    }
    Ok(())
}

/// Writes `path` atomically: `write` fills a temporary file in the same directory, which is
/// flushed, synced and renamed over the target (a link's target, see [`check`]); the directory is
/// synced after. On any error the temporary file is removed and the target is untouched.
pub fn write_atomic(
    path: &Path,
    what: &str,
    write: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> CliResult<()> {
    let target = target(path, what)?;
    let err = |e: std::io::Error| CliError::new(format!("{what} `{}`: {e}", path.display()));
    let tmp = temp_name(&target, "tmp");
    let result = (|| {
        let file = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        let mut buf = BufWriter::new(file);
        write(&mut buf)?;
        buf.flush()?;
        let file = buf.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, &target)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(err(e));
    }
    // The rename is durable once the directory is synced (best effort: not every platform can).
    if let Ok(d) = File::open(dir_of(&target)) {
        let _ = d.sync_all();
    }
    Ok(())
}
