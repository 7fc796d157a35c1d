//! Loading a policy directory holds its converted weights and little else: the file is read
//! tensor by tensor (`DiffusionPolicy::from_dir`), so the heap never also holds the whole file.
//! Alone in its binary: it counts every heap byte of the process.

mod alloc_count;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use alloc_count::{LIVE, PEAK};

use picardiff::model::unet::MapWeights;
use picardiff::model::DiffusionPolicy;

#[test]
fn loading_a_policy_holds_the_weights_and_one_tensor_more() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/lerobot/film_scale_k5");
    let file_bytes = std::fs::metadata(dir.join("model.safetensors"))
        .unwrap()
        .len() as usize;
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let p = DiffusionPolicy::from_dir(&dir).unwrap();
    let peak = PEAK.load(Ordering::Relaxed) - before;
    let (mut weights, mut largest) = (0usize, 0usize);
    p.weights()
        .map(&mut |t: &Arc<[f32]>| {
            weights += 4 * t.len();
            largest = largest.max(4 * t.len());
            Ok(())
        })
        .unwrap();
    assert!(
        weights > file_bytes / 2,
        "an f32 checkpoint: weights {weights}, file {file_bytes}"
    );
    // The weights, one tensor being converted (its Vec, then its Arc), the header, names and the
    // config: bounded by the weights plus two of the largest tensor plus a small slack. Reading
    // the whole file first would add `file_bytes` (about the weights again).
    let bound = weights + 2 * largest + (64 << 10);
    assert!(
        peak <= bound,
        "peak heap while loading {peak} bytes > {bound} (weights {weights}, largest tensor \
         {largest}, file {file_bytes})"
    );
    assert!(
        peak < weights + file_bytes,
        "peak {peak}: the whole file was held"
    );
}
