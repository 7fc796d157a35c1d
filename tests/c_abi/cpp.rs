//! examples/cpp/main.cpp compiled with the system C++ compiler against the built cdylib.

use std::path::PathBuf;
use std::process::Command;

use super::*;

/// Where the library this test binary was linked with lies: `target/<profile>/deps`, the test
/// binary's own folder. (`cargo test` builds the cdylib there but does not copy it up to
/// `target/<profile>/`, which may hold an older `cargo build`'s copy.)
fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent()
        .expect("the test binary has no parent folder")
        .to_path_buf()
}

fn tool(env: &str, default: &str) -> String {
    let name = std::env::var(env).unwrap_or_else(|_| default.to_string());
    match Command::new(&name).arg("--version").output() {
        Ok(o) if o.status.success() => name,
        _ => panic!("`{name}` not found or not working: the C ABI test compiles C and C++17 against include/picardiff.h and needs a C/C++ compiler on PATH (install g++, or set {env})"),
    }
}

fn compile(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One run's samples from the example's output.
fn parse_run(stdout: &str, name: &str) -> (Vec<f32>, usize) {
    let mut lines = stdout
        .lines()
        .skip_while(|l| !l.starts_with(&format!("run {name} ")));
    let head = lines
        .next()
        .unwrap_or_else(|| panic!("no `run {name}` in:\n{stdout}"));
    let field = |k: &str| -> usize {
        head.split(' ')
            .find_map(|f| f.strip_prefix(&format!("{k}=")))
            .unwrap()
            .parse()
            .unwrap()
    };
    let (batch, dim, rounds) = (field("batch"), field("dim"), field("rounds"));
    let mut samples = Vec::new();
    for (b, line) in lines.take(batch).enumerate() {
        let mut f = line.split(' ');
        assert_eq!(
            (f.next(), f.next()),
            (Some("sample"), Some(b.to_string().as_str())),
            "{line}"
        );
        samples.extend(f.map(|v| v.parse::<f32>().unwrap()));
    }
    assert_eq!(samples.len(), batch * dim);
    (samples, rounds)
}

#[test]
fn cpp_example_matches_the_rust_api() {
    let dir = lib_dir();
    let lib = dir.join(format!(
        "{}picardiff{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    assert!(
        lib.exists(),
        "{} not found next to the test binary: the cdylib is built with the library \
         (crate-type in Cargo.toml's [lib])",
        lib.display()
    );
    let work = dir.parent().unwrap_or(&dir).join("c_abi_test");
    std::fs::create_dir_all(&work).unwrap();
    let include = root().join("include");

    // The header is valid C (C11, pedantic) as well as C++.
    let c_file = work.join("header_check.c");
    std::fs::write(&c_file, "#include \"picardiff.h\"\nint main(void) { picardiff_sampler_config c; return (int)picardiff_sampler_config_default(&c); }\n").unwrap();
    compile(
        Command::new(tool("CC", "cc"))
            .args([
                "-std=c11",
                "-Wall",
                "-Wextra",
                "-pedantic",
                "-Werror",
                "-fsyntax-only",
            ])
            .arg("-I")
            .arg(&include)
            .arg(&c_file),
    );

    let exe = work.join("picardiff-cpp-example");
    compile(
        Command::new(tool("CXX", "c++"))
            .args(["-std=c++17", "-O2", "-Wall", "-Wextra", "-Werror"])
            .arg("-I")
            .arg(&include)
            .arg(root().join("examples/cpp/main.cpp"))
            .arg("-L")
            .arg(&dir)
            .arg("-lpicardiff")
            .arg(format!("-Wl,-rpath,{}", dir.display()))
            .arg("-o")
            .arg(&exe),
    );
    let out = Command::new(&exe).output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "example failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.starts_with(&format!("picardiff {}\n", env!("CARGO_PKG_VERSION"))),
        "{stdout}"
    );
    assert!(stdout.contains("\nconfig schedule=ddpm-linear steps=100 rule=ddpm sampler=picard window=all tol=default batch=16 seed=42\n"), "the example's config changed: update this test\n{stdout}");
    assert!(stdout.trim_end().ends_with("end"));
    assert!(stderr.contains("expected error: invalid sampler configuration: picardiff_sampler_new: invalid config `schedule`"), "{stderr}");

    let want = rust_picard(100, 16, 42, None, None);
    let (mixture, rounds) = parse_run(&stdout, "mixture");
    let dm = mixture
        .iter()
        .zip(&want.samples)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(
        dm <= 1e-6,
        "C++ mixture samples deviate from the Rust API's by {dm}"
    );
    assert_eq!(rounds, want.stats.rounds);
    // The C++ callback computes the same ε in double precision: nearly the same samples.
    let (callback, rounds) = parse_run(&stdout, "callback");
    let dc = callback
        .iter()
        .zip(&want.samples)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(
        dc <= 1e-4,
        "C++ callback samples deviate from the Rust API's by {dc}"
    );
    assert!(rounds < 100);
    eprintln!("C++ example: mixture max |Δ| = {dm:e}, callback max |Δ| = {dc:e} (batch 16, 100 steps, {} rounds)", want.stats.rounds);
}
