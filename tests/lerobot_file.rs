//! A policy directory's `model.safetensors` is read tensor by tensor from the open file
//! (`DiffusionPolicy::from_dir`), not into memory first: the weights must equal those parsed from
//! the file's bytes (`from_parts`), for f32 and half-precision files, and every damaged file must
//! be a clear error from both paths, never a panic.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use picardiff::model::unet::MapWeights;
use picardiff::model::DiffusionPolicy;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use serde_json::Value;

const NAMES: [&str; 3] = ["film_bias_k3_g4", "film_scale_k5", "sample_pred_k7"];

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/lerobot")
        .join(name)
}

fn config(name: &str) -> Value {
    let text = std::fs::read_to_string(fixture(name).join("config.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Every weight of `p`, in the U-Net's fixed visiting order, as bits.
fn weight_bits(p: &DiffusionPolicy) -> Vec<Vec<u32>> {
    let mut all = Vec::new();
    p.weights()
        .map(&mut |t: &Arc<[f32]>| {
            all.push(t.iter().map(|v| v.to_bits()).collect::<Vec<u32>>());
            Ok(())
        })
        .unwrap();
    all
}

/// A policy directory holding `name`'s config and the safetensors bytes `model`.
fn policy_dir(name: &str, model: &[u8]) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixture(name).join("config.json"),
        tmp.path().join("config.json"),
    )
    .unwrap();
    std::fs::write(tmp.path().join("model.safetensors"), model).unwrap();
    tmp
}

/// `bytes`' tensors re-encoded as f16 (little-endian).
fn as_f16(bytes: &[u8]) -> Vec<u8> {
    let st = SafeTensors::deserialize(bytes).unwrap();
    let halves: Vec<(String, Vec<usize>, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| {
            let data = v
                .data()
                .chunks_exact(4)
                .flat_map(|b| {
                    half::f16::from_f32(f32::from_le_bytes([b[0], b[1], b[2], b[3]])).to_le_bytes()
                })
                .collect();
            (n, v.shape().to_vec(), data)
        })
        .collect();
    let views = halves.iter().map(|(n, s, d)| {
        (
            n.clone(),
            TensorView::new(Dtype::F16, s.clone(), d).unwrap(),
        )
    });
    safetensors::serialize(views, None).unwrap()
}

#[test]
fn weights_read_from_the_file_equal_those_parsed_from_its_bytes() {
    for name in NAMES {
        let bytes = std::fs::read(fixture(name).join("model.safetensors")).unwrap();
        let from_file = DiffusionPolicy::from_dir(&fixture(name)).unwrap();
        let from_bytes = DiffusionPolicy::from_parts(&config(name), &bytes).unwrap();
        assert_eq!(weight_bits(&from_file), weight_bits(&from_bytes), "{name}");
        assert_eq!(from_file.summary(), from_bytes.summary(), "{name}");

        let half = as_f16(&bytes);
        let dir = policy_dir(name, &half);
        let from_file = DiffusionPolicy::from_dir(dir.path()).unwrap();
        let from_bytes = DiffusionPolicy::from_parts(&config(name), &half).unwrap();
        assert_eq!(
            weight_bits(&from_file),
            weight_bits(&from_bytes),
            "{name} f16"
        );
    }
}

/// Damaged files: (what, bytes). Each must be refused by both loading paths.
fn damaged(good: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let n = u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
    let with_len = |len: u64| {
        let mut b = good.to_vec();
        b[..8].copy_from_slice(&len.to_le_bytes());
        b
    };
    let mut not_json = good.to_vec();
    not_json[8] = b'#';
    let mut past_end = good.to_vec();
    past_end.push(0);
    vec![
        ("empty", Vec::new()),
        ("shorter than the length prefix", good[..7].to_vec()),
        ("only the header", good[..8 + n].to_vec()),
        ("the last byte missing", good[..good.len() - 1].to_vec()),
        ("one byte past the data", past_end),
        ("a header length past the end", with_len(good.len() as u64)),
        ("a header length over the limit", with_len(200_000_000)),
        ("a header length of u64::MAX", with_len(u64::MAX)),
        ("a header cut inside the JSON", with_len(n as u64 - 16)),
        ("offsets summing past 2^64", offsets_past_u64()),
        ("a header that is not JSON", not_json),
    ]
}

/// A header that passes safetensors' own checks (eight F64 tensors of 2^58 − 1 values whose
/// offsets tile 0 .. 2^64 − 64) but whose data end, header included, lies past 2^64: the crate's
/// own `read_metadata` overflows there (a panic in a debug build).
fn offsets_past_u64() -> Vec<u8> {
    let size = (1u64 << 61) - 8; // bytes of 2^58 − 1 f64 values
    let entries: Vec<String> = (0..8u64)
        .map(|i| {
            format!(
                "\"t{i}\":{{\"dtype\":\"F64\",\"shape\":[{}],\"data_offsets\":[{},{}]}}",
                (1u64 << 58) - 1,
                i * size,
                (i + 1) * size
            )
        })
        .collect();
    let header = format!("{{{}}}", entries.join(","));
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes
}

#[test]
fn damaged_files_are_refused_by_both_paths() {
    let name = NAMES[0];
    let good = std::fs::read(fixture(name).join("model.safetensors")).unwrap();
    for (what, bytes) in damaged(&good) {
        let dir = policy_dir(name, &bytes);
        let file = DiffusionPolicy::from_dir(dir.path())
            .map(|_| ())
            .expect_err(what)
            .to_string();
        let parsed = DiffusionPolicy::from_parts(&config(name), &bytes)
            .map(|_| ())
            .expect_err(what)
            .to_string();
        for e in [&file, &parsed] {
            assert!(e.contains("not a valid safetensors file"), "{what}: {e}");
        }
    }
}

#[test]
fn a_misplaced_tensor_offset_is_refused() {
    // Swap the first tensor's offsets with a range of the wrong size: the header check refuses it
    // before any data is read.
    let name = NAMES[0];
    let good = std::fs::read(fixture(name).join("model.safetensors")).unwrap();
    let n = u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&good[8..8 + n]).unwrap();
    let bad = header.replacen("\"data_offsets\":[0,", "\"data_offsets\":[4,", 1);
    assert_ne!(bad, header, "the fixture's header has a tensor at offset 0");
    let mut bytes = (bad.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(bad.as_bytes());
    bytes.extend_from_slice(&good[8 + n..]);
    let dir = policy_dir(name, &bytes);
    let e = DiffusionPolicy::from_dir(dir.path())
        .map(|_| ())
        .unwrap_err();
    assert!(
        e.to_string().contains("not a valid safetensors file"),
        "{e}"
    );
}

/// The MLP loader shares the header check: the overflowing header is an error there too.
#[test]
fn an_overflowing_header_is_refused_by_the_mlp_loader() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    std::fs::write(&path, offsets_past_u64()).unwrap();
    let e = picardiff::model::load_model(&path).map(|_| ()).unwrap_err();
    assert!(
        e.to_string().contains("not a valid safetensors file"),
        "{e}"
    );
}
