//! Build script: with feature `cuda`, compiles `kernels/*.cu` with nvcc (through `cc`) into a static
//! library linked with the static CUDA runtime, and runs bindgen on `kernels/picardiff_kernels.h`.
//! Without the feature it does nothing, so the default build needs no CUDA anywhere.
//!
//! Environment:
//! - `NVCC`: the nvcc to use; else `CUDA_HOME`/`CUDA_PATH` + `bin/nvcc`, else the pinned wheel at
//!   `.cuda/nvidia/cu13/bin/nvcc` (installed by `scripts/setup-cuda.sh`), else `nvcc` on PATH.
//! - `PICARDIFF_CUDA_ARCHS`: replaces the default `-gencode` list. Either nvcc flags
//!   (`-gencode arch=compute_90,code=sm_90 ...`) or arch numbers (`80 90`, `sm_90a`): each number N
//!   gives SASS for sm_N, and the last one also PTX for forward compatibility.

use std::env;
use std::path::{Path, PathBuf};

/// SASS for A100 (sm_80) and H100/H200 (sm_90), plus sm_90 PTX for newer GPUs.
const DEFAULT_ARCHS: &str =
    "-gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 \
                             -gencode arch=compute_90,code=compute_90";

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=CARGO_FEATURE_CUDA");
    // Cargo sets CARGO_FEATURE_CUDA for the build script when the feature is on; cc and bindgen
    // are compiled in only then (optional build-dependencies).
    #[cfg(feature = "cuda")]
    if env::var_os("CARGO_FEATURE_CUDA").is_some() {
        cuda::build();
    }
}

/// nvcc flags from `PICARDIFF_CUDA_ARCHS` (flags or arch numbers), or the default list.
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
fn arch_flags(spec: Option<&str>) -> Result<Vec<String>, String> {
    let spec = spec.map(str::trim).filter(|s| !s.is_empty());
    let Some(spec) = spec else {
        return Ok(DEFAULT_ARCHS.split_whitespace().map(String::from).collect());
    };
    let tokens: Vec<&str> = spec.split_whitespace().collect();
    if tokens
        .iter()
        .any(|t| t.starts_with('-') || t.contains("arch="))
    {
        return Ok(tokens.into_iter().map(String::from).collect());
    }
    let mut flags = Vec::new();
    for (i, tok) in tokens.iter().enumerate() {
        let arch = tok
            .trim_start_matches("sm_")
            .trim_start_matches("compute_")
            .trim_start_matches("sm")
            .trim_start_matches("compute");
        let ok = arch.len() >= 2
            && arch.chars().take_while(char::is_ascii_digit).count() >= 2
            && arch.chars().all(|c| c.is_ascii_alphanumeric());
        if !ok {
            return Err(format!(
                "PICARDIFF_CUDA_ARCHS: `{tok}` is neither an nvcc flag nor an arch number like 90 or sm_90a"
            ));
        }
        flags.push("-gencode".to_string());
        flags.push(format!("arch=compute_{arch},code=sm_{arch}"));
        if i + 1 == tokens.len() {
            flags.push("-gencode".to_string());
            flags.push(format!("arch=compute_{arch},code=compute_{arch}"));
        }
    }
    Ok(flags)
}

/// nvcc: `NVCC`, `CUDA_HOME`/`CUDA_PATH` + bin/nvcc, the repo's `.cuda/` wheel, then PATH.
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
fn find_nvcc(manifest_dir: &Path) -> Option<PathBuf> {
    if let Some(p) = env::var_os("NVCC").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    for var in ["CUDA_HOME", "CUDA_PATH"] {
        if let Some(root) = env::var_os(var).filter(|p| !p.is_empty()) {
            let p = Path::new(&root).join("bin").join("nvcc");
            if p.is_file() {
                return Some(p);
            }
        }
    }
    let wheel = manifest_dir.join(".cuda/nvidia/cu13/bin/nvcc");
    if wheel.is_file() {
        return Some(wheel);
    }
    env::var_os("PATH").and_then(|paths| {
        env::split_paths(&paths)
            .map(|dir| dir.join("nvcc"))
            .find(|p| p.is_file())
    })
}

#[cfg(feature = "cuda")]
mod cuda {
    use super::*;

    pub fn build() {
        for var in [
            "NVCC",
            "CUDA_HOME",
            "CUDA_PATH",
            "PICARDIFF_CUDA_ARCHS",
            "NVCC_CCBIN",
        ] {
            println!("cargo::rerun-if-env-changed={var}");
        }
        println!("cargo::rerun-if-changed=kernels");
        let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
        let kernels = manifest_dir.join("kernels");
        let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());

        let Some(nvcc) = find_nvcc(&manifest_dir) else {
            panic!(
                "feature `cuda`: nvcc not found (looked at $NVCC, $CUDA_HOME/bin/nvcc, $CUDA_PATH/bin/nvcc, \
                 {}/.cuda/nvidia/cu13/bin/nvcc and PATH). Run `scripts/setup-cuda.sh` from the repository \
                 root to install the pinned CUDA 13.0 nvcc into .cuda/, or set NVCC.",
                manifest_dir.display()
            );
        };
        let archs = arch_flags(env::var("PICARDIFF_CUDA_ARCHS").ok().as_deref())
            .unwrap_or_else(|e| panic!("{e}"));

        let mut sources: Vec<PathBuf> = std::fs::read_dir(&kernels)
            .unwrap_or_else(|e| panic!("reading {}: {e}", kernels.display()))
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "cu"))
            .collect();
        sources.sort();
        for entry in std::fs::read_dir(&kernels).unwrap().flatten() {
            println!("cargo::rerun-if-changed={}", entry.path().display());
        }

        // cc reads the nvcc path only from the process environment (`NVCC`); build scripts run
        // single-threaded, so setting it here is sound.
        env::set_var("NVCC", &nvcc);
        let mut build = cc::Build::new();
        build
            .cuda(true)
            .cudart("static")
            .include(&kernels)
            .flag("-O3")
            .flag("-std=c++17")
            .flag("-Xcompiler")
            .flag("-fPIC")
            .warnings(false);
        for f in &archs {
            build.flag(f);
        }
        for src in &sources {
            build.file(src);
        }
        // A kernel syntax error makes nvcc fail and `compile` panic: the build fails, as CI needs.
        build.compile("picardiff_kernels");

        // The wheel has lib/ (libcudart_static.a), not lib64/ or targets/<arch>/lib that cc looks for.
        let root = nvcc.parent().and_then(Path::parent).map(Path::to_path_buf);
        for lib in root
            .iter()
            .flat_map(|r| [r.join("lib"), r.join("lib64")])
            .filter(|d| d.join("libcudart_static.a").is_file())
        {
            println!("cargo::rustc-link-search=native={}", lib.display());
        }
        // libcudart_static needs these on older glibc (no-ops on glibc >= 2.34).
        for lib in ["dl", "rt", "pthread"] {
            println!("cargo::rustc-link-lib={lib}");
        }

        let header = kernels.join("picardiff_kernels.h");
        let bindings = bindgen::Builder::default()
            .header(header.display().to_string())
            .allowlist_function("launch_.*")
            .allowlist_function("picardiff_.*")
            .allowlist_type("Picard.*")
            .allowlist_type("Gmm.*")
            .allowlist_type("Mlp.*")
            .allowlist_var("PICARDIFF_.*")
            .derive_default(true)
            .derive_debug(true)
            .derive_copy(true)
            .layout_tests(true)
            .generate_comments(true)
            .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
            .generate()
            .unwrap_or_else(|e| {
                panic!(
                    "bindgen on {}: {e} (bindgen needs libclang: `apt-get install libclang-dev`, \
                     which scripts/setup-cuda.sh does)",
                    header.display()
                )
            });
        bindings
            .write_to_file(out_dir.join("picardiff_kernels.rs"))
            .expect("writing the kernel bindings");
    }
}
