//! Hostile or unsupported LeRobot policy directories: every defect is a clear `Error`, never a
//! panic, and a checkpoint with an image encoder loads its U-Net and says the observation features
//! come from the caller. (Exactness against LeRobot: tests/lerobot.rs.)

use std::path::{Path, PathBuf};

use picardiff::model::unet::Features;
use picardiff::model::{load_model, DiffusionPolicy, ModelFile};
use safetensors::{Dtype, SafeTensors};
use serde_json::{json, Value};

fn dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/lerobot")
        .join(name)
}

fn config(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir(name).join("config.json")).unwrap()).unwrap()
}

type Tensors = Vec<(String, Dtype, Vec<usize>, Vec<u8>)>;

fn tensors(name: &str) -> Tensors {
    let bytes = std::fs::read(dir(name).join("model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(n, v)| (n, v.dtype(), v.shape().to_vec(), v.data().to_vec()))
        .collect()
}

fn pack(t: &Tensors) -> Vec<u8> {
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = t
        .iter()
        .map(|(n, d, s, b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap(),
            )
        })
        .collect();
    safetensors::serialize(views, None).unwrap()
}

/// The error of loading `cfg` with `t`, as text.
fn err(cfg: &Value, t: &Tensors) -> String {
    DiffusionPolicy::from_parts(cfg, &pack(t))
        .map(|_| ())
        .unwrap_err()
        .to_string()
}

const NAME: &str = "film_bias_k3_g4";
const FILM: &str = "diffusion.unet.down_modules.0.0.cond_encoder.1.weight";

#[test]
fn the_fixture_loads_and_describes_itself() {
    let p = DiffusionPolicy::from_parts(&config(NAME), &pack(&tensors(NAME))).unwrap();
    let s = p.summary();
    assert!(s.contains("bias only") && s.contains("Ddim"), "{s}");
    assert!(
        s.contains("7 = (state 4 + environment_state 3) × n_obs_steps 1"),
        "{s}"
    );
    assert!(!p.features.has_rgb_encoder);
}

#[test]
fn missing_misshapen_and_non_finite_tensors_are_named() {
    let (cfg, t) = (config(NAME), tensors(NAME));
    let key = "diffusion.unet.mid_modules.1.conv2.block.1.bias";
    let missing: Tensors = t.iter().filter(|x| x.0 != key).cloned().collect();
    let e = err(&cfg, &missing);
    assert!(e.contains(key) && e.contains("missing"), "{e}");

    let mut shaped = t.clone();
    let i = shaped.iter().position(|x| x.0 == key).unwrap();
    shaped[i].2 = vec![shaped[i].2[0] / 2, 2];
    let e = err(&cfg, &shaped);
    assert!(e.contains(key) && e.contains("shape"), "{e}");

    let mut nan = t.clone();
    nan[i].3[4..8].copy_from_slice(&f32::NAN.to_le_bytes());
    let e = err(&cfg, &nan);
    assert!(e.contains(key) && e.contains("finite"), "{e}");

    let mut i64s = t.clone();
    i64s[i].1 = Dtype::I32;
    let e = err(&cfg, &i64s);
    assert!(e.contains("not supported"), "{e}");

    let mut extra = t.clone();
    extra.push((
        "diffusion.unet.down_modules.9.0.conv1.block.0.weight".into(),
        Dtype::F32,
        vec![1],
        vec![0; 4],
    ));
    let e = err(&cfg, &extra);
    assert!(e.contains("unexpected U-Net tensor"), "{e}");

    assert!(err(&cfg, &vec![]).contains(FILM));
    let e = DiffusionPolicy::from_parts(&cfg, b"not a safetensors file")
        .unwrap_err()
        .to_string();
    assert!(e.contains("safetensors"), "{e}");
}

#[test]
fn config_defects_and_unsupported_settings_are_named() {
    let t = tensors(NAME);
    let cases: &[(&str, Value, &str)] = &[
        ("noise_scheduler_type", json!("DPMSolver"), "not supported"),
        ("prediction_type", json!("v_prediction"), "not supported"),
        (
            "beta_schedule",
            json!("sigmoid"),
            "unsupported beta_schedule",
        ),
        ("kernel_size", json!(4), "even"),
        ("horizon", json!(7), "divisible"),
        ("n_groups", json!(5), "does not divide"),
        ("num_inference_steps", json!(1000), "exceeds"),
        ("clip_sample_range", json!(-1.0), "> 0"),
        ("down_dims", json!([]), "down_dims"),
        ("down_dims", json!([16, 32, 64]), "missing tensor"),
        ("horizon", json!(1e30), "integer"),
        ("n_obs_steps", json!(2), "conditions on 7 values"),
        ("use_film_scale_modulation", json!(true), "shape"),
        (
            "diffusion_step_embed_dim",
            json!(8),
            "conditions on 15 values",
        ),
    ];
    for (field, value, want) in cases {
        let mut cfg = config(NAME);
        cfg[*field] = value.clone();
        let e = err(&cfg, &t);
        assert!(e.contains(want), "{field} = {value}: {e}");
    }
    let mut cfg = config(NAME);
    cfg.as_object_mut().unwrap().remove("clip_sample");
    assert!(err(&cfg, &t).contains("clip_sample"));
}

#[test]
fn directories_are_checked_and_other_policies_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let e = load_model(tmp.path()).unwrap_err().to_string();
    assert!(e.contains("config.json and model.safetensors"), "{e}");
    std::fs::write(tmp.path().join("config.json"), r#"{"type": "act"}"#).unwrap();
    std::fs::copy(
        dir(NAME).join("model.safetensors"),
        tmp.path().join("model.safetensors"),
    )
    .unwrap();
    let e = load_model(tmp.path()).unwrap_err().to_string();
    assert!(e.contains("`act` policies are not supported"), "{e}");
    std::fs::write(tmp.path().join("config.json"), "{not json").unwrap();
    assert!(load_model(tmp.path())
        .unwrap_err()
        .to_string()
        .contains("JSON"));
    std::fs::copy(
        dir(NAME).join("config.json"),
        tmp.path().join("config.json"),
    )
    .unwrap();
    assert!(matches!(
        load_model(tmp.path()).unwrap(),
        ModelFile::Policy(_)
    ));
    let e = DiffusionPolicy::from_dir_with(tmp.path(), &[("no_such_field".into(), json!(1))])
        .unwrap_err();
    assert!(e.to_string().contains("no such field"), "{e}");
}

/// A checkpoint carrying LeRobot's image encoder loads its U-Net and tells the caller to supply the
/// observation features; the image config's conditioning width is LeRobot's.
#[test]
fn an_image_encoder_is_reported_and_its_width_counted() {
    let mut t = tensors(NAME);
    t.push((
        "diffusion.rgb_encoder.backbone.0.weight".into(),
        Dtype::F32,
        vec![2],
        vec![0; 8],
    ));
    let p = DiffusionPolicy::from_parts(&config(NAME), &pack(&t)).unwrap();
    assert!(p.features.has_rgb_encoder);
    assert!(
        p.summary().contains("not run by picardiff"),
        "{}",
        p.summary()
    );
    assert_eq!(
        p.other_tensors,
        vec!["diffusion.rgb_encoder.backbone.0.weight".to_string()]
    );

    // LeRobot's image config (config.json and key list only: its weights are ~1 GB).
    let cfg = config("image_config");
    let reference: Value = serde_json::from_str(
        &std::fs::read_to_string(dir("image_config").join("reference.json")).unwrap(),
    )
    .unwrap();
    let (features, action_dim) = Features::from_config(&cfg).unwrap();
    assert_eq!(
        features.width() as u64,
        reference["global_cond_dim"].as_u64().unwrap()
    );
    assert_eq!(
        (features.cameras, features.image_features, action_dim),
        (1, 64, 2)
    );
    let text = features.describe(features.width());
    assert!(
        text.starts_with("132 = (state 2 + 1 camera(s) × 64 image features) × n_obs_steps 2"),
        "{text}"
    );
}

/// A checkpoint saved from LeRobot's `compile_model` (keys `diffusion.unet._orig_mod.*`) loads to the
/// same U-Net.
#[test]
fn a_compiled_models_keys_load() {
    let t: Tensors = tensors(NAME)
        .into_iter()
        .map(|(n, d, s, b)| {
            (
                n.replacen("diffusion.unet.", "diffusion.unet._orig_mod.", 1),
                d,
                s,
                b,
            )
        })
        .collect();
    let compiled = DiffusionPolicy::from_parts(&config(NAME), &pack(&t)).unwrap();
    let plain = DiffusionPolicy::from_parts(&config(NAME), &pack(&tensors(NAME))).unwrap();
    assert_eq!(
        compiled.weights().time1.weight,
        plain.weights().time1.weight
    );
    assert_eq!(compiled.config, plain.config);
}
