//! Links the emulated kernels built by ../run.sh (EMU_LIB_DIR).
fn main() {
    let dir = std::env::var("EMU_LIB_DIR").expect("run this through tools/cuda-emu/run.sh");
    println!("cargo:rustc-link-search=native={dir}");
    println!("cargo:rustc-link-lib=static=emu");
    println!("cargo:rustc-link-lib=stdc++");
    println!("cargo:rerun-if-changed={dir}/libemu.a");
    println!("cargo:rerun-if-env-changed=EMU_LIB_DIR");
}
