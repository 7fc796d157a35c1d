//! Hostile MLP safetensors files: wrong shapes, missing tensors, unknown dtypes, NaN/Inf weights,
//! metadata that lies, truncated and oversized files all give clear `Error::Model`s naming the tensor
//! or field, and nothing is allocated from an unchecked header. (The forward itself: tests/mlp.rs.)

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use picardiff::model::{load_model, MlpModel};
use picardiff::prelude::*;
use safetensors::{Dtype, SafeTensors};
use serde_json::{json, Value};

const MOONS: &str = "examples/models/moons2d.safetensors";
const MOONS_BF16: &str = "examples/models/moons2d_bf16.safetensors";
// ---------------------------------------------------------------------------------------------
// Hostile files

/// A safetensors file taken apart: metadata and tensors (name, dtype, shape, bytes).
#[derive(Clone)]
struct St {
    meta: HashMap<String, String>,
    tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)>,
}

impl St {
    fn read(path: &str) -> St {
        let bytes = std::fs::read(path).unwrap();
        let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let mut tensors: Vec<_> = st
            .tensors()
            .into_iter()
            .map(|(n, v)| (n, v.dtype(), v.shape().to_vec(), v.data().to_vec()))
            .collect();
        tensors.sort_by(|a, b| a.0.cmp(&b.0));
        St {
            meta: meta.metadata().clone().unwrap(),
            tensors,
        }
    }
    fn bytes(&self) -> Vec<u8> {
        let views: Vec<_> = self
            .tensors
            .iter()
            .map(|(n, d, s, b)| {
                (
                    n.clone(),
                    safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap(),
                )
            })
            .collect();
        safetensors::serialize(views, Some(self.meta.clone())).unwrap()
    }
    fn config(&self) -> Value {
        serde_json::from_str(&self.meta["picardiff_mlp"]).unwrap()
    }
    fn with_config(mut self, f: impl FnOnce(&mut Value)) -> St {
        let mut c = self.config();
        f(&mut c);
        self.meta.insert("picardiff_mlp".into(), c.to_string());
        self
    }
    fn tensor(&mut self, name: &str) -> &mut (String, Dtype, Vec<usize>, Vec<u8>) {
        self.tensors.iter_mut().find(|t| t.0 == name).unwrap()
    }
    fn without(mut self, name: &str) -> St {
        self.tensors.retain(|t| t.0 != name);
        self
    }
}

/// Splits a file into its header JSON and data.
fn split(bytes: &[u8]) -> (String, Vec<u8>) {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    (
        String::from_utf8(bytes[8..8 + n].to_vec()).unwrap(),
        bytes[8 + n..].to_vec(),
    )
}

fn join(header: &str, data: &[u8]) -> Vec<u8> {
    let mut b = (header.len() as u64).to_le_bytes().to_vec();
    b.extend_from_slice(header.as_bytes());
    b.extend_from_slice(data);
    b
}

/// Writes `bytes` to a temp file, loads it, and returns the model error's (field, message).
fn model_error(bytes: &[u8]) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("bad.safetensors");
    std::fs::write(&path, bytes).unwrap();
    let via_load_model = load_model(&path).map(|_| ()).unwrap_err().to_string();
    match MlpModel::from_file(&path) {
        Err(Error::Model { field, msg }) => {
            assert!(msg.contains("bad.safetensors"), "the path is named: {msg}");
            assert!(via_load_model.contains(&field));
            (field, msg)
        }
        Err(e) => panic!("expected Error::Model, got {e}"),
        Ok(_) => panic!("a hostile file loaded"),
    }
}

fn expect(bytes: &[u8], field: &str, words: &[&str]) {
    let (f, msg) = model_error(bytes);
    println!("{f}: {msg}");
    assert_eq!(f, field, "{msg}");
    for w in words {
        assert!(msg.contains(w), "`{w}` not in: {msg}");
    }
}

#[test]
fn hostile_tensors() {
    let good = St::read(MOONS);
    assert!(
        MlpModel::from_bytes(&good.bytes()).is_ok(),
        "the rebuilt file loads"
    );

    expect(
        &good.clone().without("layers.1.fc1.weight").bytes(),
        "layers.1.fc1.weight",
        &["missing", "[128, 128]"],
    );
    let mut s = good.clone();
    *s.tensor("output.weight") = (
        "output.weight".into(),
        Dtype::F32,
        vec![3, 128],
        vec![0; 3 * 128 * 4],
    );
    expect(
        &s.bytes(),
        "output.weight",
        &["shape [3, 128]", "expected [2, 128]"],
    );
    let mut s = good.clone();
    let t = s.tensor("time_fc1.bias");
    t.1 = Dtype::I32;
    expect(&s.bytes(), "time_fc1.bias", &["I32", "not supported"]);
    let mut s = good.clone();
    let t = s.tensor("input.bias");
    t.1 = Dtype::F64;
    t.2 = vec![64];
    expect(&s.bytes(), "input.bias", &["shape [64]"]);
    let mut s = good.clone();
    s.tensor("time_fc2.weight").3[40..44].copy_from_slice(&f32::NAN.to_le_bytes());
    expect(&s.bytes(), "time_fc2.weight", &["element 10", "NaN"]);
    let mut s = good.clone();
    s.tensor("norm_out.bias").3[..4].copy_from_slice(&f32::NEG_INFINITY.to_le_bytes());
    expect(&s.bytes(), "norm_out.bias", &["element 0", "inf"]);
    let mut s = St::read(MOONS_BF16);
    s.tensor("layers.2.fc2.weight").3[6..8]
        .copy_from_slice(&half::bf16::INFINITY.to_bits().to_le_bytes());
    expect(&s.bytes(), "layers.2.fc2.weight", &["element 3", "inf"]);
    // Mixed GEMM dtypes: one Linear weight in bf16 among f32 ones.
    let mut s = good.clone();
    let t = s.tensor("layers.0.fc2.weight");
    let bf: Vec<u8> =
        t.3.chunks_exact(4)
            .flat_map(|b| {
                half::bf16::from_f32(f32::from_le_bytes(b.try_into().unwrap()))
                    .to_bits()
                    .to_le_bytes()
            })
            .collect();
    t.1 = Dtype::BF16;
    t.3 = bf;
    expect(&s.bytes(), "layers.0.fc2.weight", &["share one dtype"]);
    // A tensor the architecture does not call for.
    let mut s = good.clone();
    s.tensors.push((
        "layers.3.fc1.bias".into(),
        Dtype::F32,
        vec![128],
        vec![0; 512],
    ));
    expect(&s.bytes(), "layers.3.fc1.bias", &["unexpected tensor"]);
}

#[test]
fn hostile_metadata() {
    let good = St::read(MOONS);
    let lie = |f: fn(&mut Value)| good.clone().with_config(f).bytes();
    expect(
        &lie(|c| c["hidden"] = json!(64)),
        "time_fc1.weight",
        &["shape [128, 32]", "[64, 32]"],
    );
    expect(&lie(|c| c["dim"] = json!(3)), "input.weight", &["[128, 3]"]);
    expect(
        &lie(|c| c["layers"] = json!(4)),
        "layers.3.norm.weight",
        &["missing"],
    );
    expect(
        &lie(|c| c["layers"] = json!(2)),
        "layers.2.fc1.bias",
        &["unexpected"],
    );
    expect(
        &lie(|c| c["residual"] = json!(false)),
        "layers.0.fc2.bias",
        &["unexpected"],
    );
    expect(
        &lie(|c| c["layernorm"] = json!(false)),
        "layers.0.norm.bias",
        &["unexpected"],
    );
    expect(
        &lie(|c| c["cond_dim"] = json!(3)),
        "cond_proj.weight",
        &["missing", "[128, 3]"],
    );
    expect(
        &lie(|c| c["time_embed_dim"] = json!(33)),
        "time_embed_dim",
        &["even"],
    );
    expect(
        &lie(|c| c["time_embed_dim"] = json!(64)),
        "time_fc1.weight",
        &["[128, 64]"],
    );
    expect(
        &lie(|c| c["activation"] = json!("relu")),
        "activation",
        &["relu"],
    );
    expect(
        &lie(|c| c["prediction"] = json!("noise")),
        "prediction",
        &["noise"],
    );
    expect(
        &lie(|c| c["schedule"] = json!("karras")),
        "schedule",
        &["karras"],
    );
    expect(
        &lie(|c| c["train_steps"] = json!(1)),
        "train_steps",
        &["at least 2"],
    );
    expect(&lie(|c| c["dim"] = json!(0)), "dim", &["out of range"]);
    expect(
        &lie(|c| c["layernorm_eps"] = json!(-1.0)),
        "layernorm_eps",
        &["> 0"],
    );
    expect(
        &lie(|c| c["time_scale"] = json!(0.0)),
        "time_scale",
        &["> 0"],
    );
    expect(
        &lie(|c| c["format_version"] = json!(2)),
        "format_version",
        &["not supported"],
    );
    expect(
        &lie(|c| c["hidden"] = json!(-5)),
        "__metadata__.picardiff_mlp",
        &["invalid value"],
    );
    expect(
        &lie(|c| c["bogus"] = json!(1)),
        "__metadata__.picardiff_mlp",
        &["bogus"],
    );
    expect(
        &lie(|c| drop(c.as_object_mut().unwrap().remove("hidden"))),
        "__metadata__.picardiff_mlp",
        &["missing field `hidden`"],
    );
    // Sizes that would allocate wildly if trusted: rejected before any tensor is read.
    expect(
        &lie(|c| c["layers"] = json!(1u64 << 40)),
        "layers",
        &["out of range"],
    );
    expect(
        &lie(|c| c["layers"] = json!(1_000_000)),
        "picardiff_mlp",
        &["parameters"],
    );
    expect(
        &lie(|c| c["hidden"] = json!(1 << 24)),
        "picardiff_mlp",
        &["parameters"],
    );
    expect(
        &lie(|c| c["hidden"] = json!(1u64 << 40)),
        "hidden",
        &["out of range"],
    );

    let mut s = good.clone();
    s.meta.insert("picardiff_mlp".into(), "{not json".into());
    expect(
        &s.bytes(),
        "__metadata__.picardiff_mlp",
        &["not a valid configuration"],
    );
    let mut s = good.clone();
    s.meta.clear();
    expect(&s.bytes(), "__metadata__.picardiff_mlp", &["missing"]);
}

#[test]
fn hostile_containers() {
    let bytes = std::fs::read(MOONS).unwrap();
    let bad = "safetensors";
    // Truncated anywhere: in the length, in the header, in the data.
    for cut in [0, 5, 8, 100, bytes.len() / 2, bytes.len() - 1] {
        expect(&bytes[..cut], bad, &["not a valid safetensors file"]);
    }
    // Trailing bytes the header does not cover.
    let mut long = bytes.clone();
    long.extend_from_slice(&[0u8; 16]);
    expect(&long, bad, &["data ends at byte", "but the file has"]);
    // A header length far beyond the file (no allocation follows it).
    for n in [u64::MAX, 1 << 40, 99_999_999, bytes.len() as u64] {
        let mut b = bytes.clone();
        b[..8].copy_from_slice(&n.to_le_bytes());
        expect(&b, bad, &["not a valid safetensors file"]);
    }
    let (header, data) = split(&bytes);
    let h: Value = serde_json::from_str(&header).unwrap();
    let edit = |f: &dyn Fn(&mut Value)| {
        let mut h = h.clone();
        f(&mut h);
        join(&h.to_string(), &data)
    };
    // Unknown dtype string.
    expect(
        &edit(&|h| h["output.bias"]["dtype"] = json!("Q4_K")),
        bad,
        &["not a valid safetensors file"],
    );
    // Offsets past the end, overlapping, or disagreeing with the shape.
    let (s, e) = (
        h["output.bias"]["data_offsets"][0].as_u64().unwrap(),
        h["output.bias"]["data_offsets"][1].as_u64().unwrap(),
    );
    expect(
        &edit(&|h| h["output.bias"]["data_offsets"] = json!([s, e + 4096])),
        bad,
        &["tensor"],
    );
    expect(
        &edit(&|h| h["output.bias"]["data_offsets"] = json!([0, e - s])),
        bad,
        &["invalid offset"],
    );
    expect(
        &edit(&|h| h["output.bias"]["shape"] = json!([3])),
        bad,
        &["invalid shape"],
    );
    expect(
        &edit(&|h| h["output.bias"]["shape"] = json!([1u64 << 62, 4])),
        bad,
        &["not a valid"],
    );
    // Not JSON, not UTF-8.
    expect(
        &join("{\"a\":", &data),
        bad,
        &["not a valid safetensors file"],
    );
    let mut b = join(&header, &data);
    b[9] = 0xff;
    expect(&b, bad, &["not a valid safetensors file"]);
}

#[test]
fn oversized_files_are_refused_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("huge.safetensors");
    let f = std::fs::File::create(&p).unwrap();
    f.set_len(picardiff::model::MAX_FILE_BYTES + 1).unwrap(); // sparse: nothing is written
    let t = std::time::Instant::now();
    match MlpModel::from_file(&p) {
        Err(Error::Model { field, msg }) => {
            assert_eq!(field, "file");
            assert!(msg.contains("limit"), "{msg}");
        }
        other => panic!("expected a size error, got {other:?}"),
    }
    assert!(t.elapsed().as_secs_f64() < 1.0, "the file was read");
    match MlpModel::from_file_with_limit(Path::new(MOONS), 1000) {
        Err(Error::Model { field, .. }) => assert_eq!(field, "file"),
        other => panic!("expected a size error, got {other:?}"),
    }
    #[cfg(unix)]
    match MlpModel::from_file(Path::new("/dev/zero")) {
        Err(Error::Model { field, msg }) => {
            assert_eq!(field, "file");
            assert!(msg.contains("not a regular file"), "{msg}");
        }
        other => panic!("expected a file error, got {other:?}"),
    }
    // A named pipe without a writer: refused before opening (opening it would block forever).
    #[cfg(unix)]
    {
        let fifo = dir.path().join("pipe.safetensors");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if made.is_ok_and(|s| s.success()) {
            match MlpModel::from_file(&fifo) {
                Err(Error::Model { msg, .. }) => {
                    assert!(msg.contains("not a regular file"), "{msg}")
                }
                other => panic!("expected a file error, got {other:?}"),
            }
            // Without a telling extension load_model sniffs the first bytes: refused there too.
            let plain = dir.path().join("pipe.model");
            std::fs::rename(&fifo, &plain).unwrap();
            let err = load_model(&plain).map(|_| ()).unwrap_err().to_string();
            assert!(err.contains("not a regular file"), "{err}");
        } else {
            eprintln!("NOTE: mkfifo unavailable, named-pipe case not run");
        }
    }
    match MlpModel::from_file(&dir.path().join("absent.safetensors")) {
        Err(Error::Io { .. }) => {}
        other => panic!("expected an I/O error, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Sampling with the trained 2-D model
