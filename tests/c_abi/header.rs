//! The committed include/picardiff.h against a fresh cbindgen run.

use super::*;

/// Regenerates the header with the cbindgen crate (same version and config as the CLI) and
/// compares; `PICARDIFF_UPDATE_HEADER=1` rewrites it instead.
#[test]
fn header_is_current() {
    let config = cbindgen::Config::from_file(root().join("cbindgen.toml")).unwrap();
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(root().join("src/ffi/mod.rs"))
        .generate()
        .expect("cbindgen failed on src/ffi");
    let mut fresh = Vec::new();
    bindings.write(&mut fresh);
    let fresh = String::from_utf8(fresh).unwrap();
    let path = root().join("include/picardiff.h");
    if std::env::var_os("PICARDIFF_UPDATE_HEADER").is_some() {
        std::fs::write(&path, &fresh).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != fresh {
        let line = committed
            .lines()
            .zip(fresh.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(committed.lines().count().min(fresh.lines().count()));
        panic!(
            "include/picardiff.h is stale (first difference at line {}): regenerate it with\n  \
             cbindgen --config cbindgen.toml --output include/picardiff.h src/ffi/mod.rs\nor\n  \
             PICARDIFF_UPDATE_HEADER=1 cargo test --test c_abi header",
            line + 1
        );
    }
    // Belt and braces: every export in src/ffi is declared in the header, and nothing else is.
    let mut exports = Vec::new();
    for entry in std::fs::read_dir(root().join("src/ffi")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for (i, _) in text.match_indices("extern \"C\" fn picardiff_") {
            let name: String = text[i + 14..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            exports.push(name);
        }
    }
    let mut declared = Vec::new();
    for line in fresh.lines().map(str::trim_start) {
        if line.starts_with("//") || line.starts_with("/*") || line.starts_with('*') {
            continue;
        }
        for (i, _) in line.match_indices("picardiff_") {
            let name: String = line[i..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if line[i + name.len()..].starts_with('(') {
                declared.push(name);
            }
        }
    }
    assert!(exports.len() >= 19, "{exports:?}");
    for e in &exports {
        assert!(declared.contains(e), "{e} is not declared in the header");
    }
    assert_eq!(
        declared.len(),
        exports.len(),
        "header declares {declared:?}, src/ffi exports {exports:?}"
    );
}
