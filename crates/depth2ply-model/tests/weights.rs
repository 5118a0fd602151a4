//! Checkpoint loading: every format of the tiny fixtures gives the same Apple-named tensors, and every
//! kind of broken file gives the matching error.
//!
//! Expected values come from `tests/fixtures/tiny_apple.safetensors` read with Candle's own safetensors
//! reader (an independent implementation); the fixtures are written by `tools/make_parity_fixtures.py`
//! (see `tests/fixtures/README.md`).

// Test helpers outside `#[test]` functions unwrap on purpose: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, IndexOp, Tensor};
use depth2ply_model::error::ModelError;
use depth2ply_model::weights::{load_weights, read_tensors, CheckpointFormat, KeyNaming, LoadedWeights};
use depth2ply_model::{DepthProConfig, DepthProNetwork};

/// Apple tensors in the tiny model (meta.json → tensor_counts.apple).
const TINY_TENSORS: usize = 195;
/// Parameters in the tiny model (meta.json → param_count).
const TINY_PARAMS: usize = 946_334;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The reference tensors, read by Candle's safetensors reader.
fn expected() -> HashMap<String, Tensor> {
    candle_core::safetensors::load(fixture("tiny_apple.safetensors"), &Device::Cpu).unwrap()
}

fn values(t: &Tensor) -> Vec<f32> {
    t.to_dtype(DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
}

fn assert_same_tensors(loaded: &LoadedWeights, expected: &HashMap<String, Tensor>) {
    let mut want: Vec<&str> = expected.keys().map(String::as_str).collect();
    want.sort_unstable();
    assert_eq!(loaded.names(), want, "{}", loaded.path().display());
    for (name, t) in expected {
        let got = loaded.get(name).unwrap();
        assert_eq!(got.dims(), t.dims(), "{name}");
        assert_eq!(values(got), values(t), "{name} in {}", loaded.path().display());
    }
}

fn build_tiny(weights: &LoadedWeights) -> Result<DepthProNetwork, ModelError> {
    weights.build_strict(|vb| DepthProNetwork::load(&DepthProConfig::tiny(), vb))
}

fn save(tensors: &HashMap<String, Tensor>, dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    candle_core::safetensors::save(tensors, &path).unwrap();
    path
}

fn load_err(path: &Path) -> ModelError {
    match load_weights(path, DType::F32, &Device::Cpu) {
        Ok(_) => panic!("{} loaded but should not", path.display()),
        Err(e) => e,
    }
}

fn assert_ends_with_path(err: &ModelError, path: &Path) {
    let text = err.to_string();
    assert!(
        text.ends_with(&path.display().to_string()),
        "message does not end with the path: {text}"
    );
}

#[test]
fn apple_pt_fp16_gives_the_reference_tensors() {
    let w = load_weights(&fixture("tiny_apple_fp16.pt"), DType::F32, &Device::Cpu).unwrap();
    assert_eq!(
        (w.format(), w.naming(), w.dtype()),
        (CheckpointFormat::PytorchZip, KeyNaming::Apple, DType::F32)
    );
    assert_eq!((w.len(), w.parameter_count()), (TINY_TENSORS, TINY_PARAMS));
    assert_same_tensors(&w, &expected());
}

#[test]
fn apple_safetensors_gives_the_reference_tensors() {
    let w = load_weights(&fixture("tiny_apple.safetensors"), DType::F32, &Device::Cpu).unwrap();
    assert_eq!(
        (w.format(), w.naming()),
        (CheckpointFormat::Safetensors, KeyNaming::Apple)
    );
    assert_same_tensors(&w, &expected());
}

#[test]
fn hf_safetensors_is_renamed_and_qkv_fused() {
    let w = load_weights(&fixture("tiny_hf.safetensors"), DType::F32, &Device::Cpu).unwrap();
    assert_eq!(
        (w.format(), w.naming()),
        (CheckpointFormat::Safetensors, KeyNaming::HuggingFace)
    );
    assert_same_tensors(&w, &expected());
    // Spot check of the fusion order: rows 64..128 of the fused qkv are HF's `key`.
    let hf = candle_core::safetensors::load(fixture("tiny_hf.safetensors"), &Device::Cpu).unwrap();
    let key = &hf["fov_model.fov_encoder.model.encoder.layer.1.attention.attention.key.weight"];
    let qkv = w.get("fov.encoder.0.blocks.1.attn.qkv.weight").unwrap();
    assert_eq!(values(&qkv.i(64..128).unwrap()), values(key));
}

#[test]
fn hf_v5_attention_spelling_is_accepted() {
    // transformers v5 in-memory names: attention.{q,k,v}_proj / attention.o_proj.
    let dir = tempfile::tempdir().unwrap();
    let renamed: HashMap<String, Tensor> =
        candle_core::safetensors::load(fixture("tiny_hf.safetensors"), &Device::Cpu)
            .unwrap()
            .into_iter()
            .map(|(k, v)| {
                let k = k
                    .replace("attention.attention.query.", "attention.q_proj.")
                    .replace("attention.attention.key.", "attention.k_proj.")
                    .replace("attention.attention.value.", "attention.v_proj.")
                    .replace("attention.output.dense.", "attention.o_proj.");
                (k, v)
            })
            .collect();
    assert!(renamed.keys().any(|k| k.ends_with("attention.q_proj.weight")));
    let path = save(&renamed, dir.path(), "v5.safetensors");
    let w = load_weights(&path, DType::F32, &Device::Cpu).unwrap();
    assert_same_tensors(&w, &expected());
}

#[test]
fn every_format_builds_the_tiny_network_strictly() {
    // The network asks for exactly the 195 tensors, with the stored shapes.
    for name in [
        "tiny_apple_fp16.pt",
        "tiny_apple.safetensors",
        "tiny_hf.safetensors",
    ] {
        let w = load_weights(&fixture(name), DType::F32, &Device::Cpu).unwrap();
        build_tiny(&w).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn f16_target_keeps_the_fp16_values() {
    let w = load_weights(&fixture("tiny_apple_fp16.pt"), DType::F16, &Device::Cpu).unwrap();
    assert_eq!(w.dtype(), DType::F16);
    let want = expected();
    for name in [
        "encoder.patch_encoder.blocks.1.attn.qkv.weight",
        "head.4.bias",
        "fov.head.4.weight",
    ] {
        let got = w.get(name).unwrap();
        assert_eq!(got.dtype(), DType::F16);
        // The fixture values are fp16-representable, so f16 → f32 round-trips exactly.
        assert_eq!(values(got), values(&want[name]), "{name}");
    }
}

#[test]
fn format_is_detected_from_bytes_not_extension() {
    let dir = tempfile::tempdir().unwrap();
    let pt_named_st = dir.path().join("weights.safetensors");
    std::fs::copy(fixture("tiny_apple_fp16.pt"), &pt_named_st).unwrap();
    let st_named_pt = dir.path().join("depth_pro.pt");
    std::fs::copy(fixture("tiny_hf.safetensors"), &st_named_pt).unwrap();
    assert_eq!(
        load_weights(&pt_named_st, DType::F32, &Device::Cpu)
            .unwrap()
            .format(),
        CheckpointFormat::PytorchZip
    );
    assert_eq!(
        load_weights(&st_named_pt, DType::F32, &Device::Cpu)
            .unwrap()
            .format(),
        CheckpointFormat::Safetensors
    );
}

#[test]
fn pt_views_and_element_types() {
    // pt_views_fp32.pt: views sharing one fp32 storage plus copies in other dtypes (README.md).
    let t: HashMap<String, Tensor> = read_tensors(&fixture("pt_views_fp32.pt"), DType::F32, &Device::Cpu)
        .unwrap()
        .into_iter()
        .collect();
    let plain = &t["plain_f32"];
    assert_eq!(plain.dims(), &[16, 64]);
    assert_eq!(values(plain), values(&expected()["fov.encoder.1.weight"]));
    assert_eq!(values(&t["transposed_f32"]), values(&plain.t().unwrap()));
    assert_eq!(t["transposed_f32"].dims(), &[64, 16]);
    assert_eq!(values(&t["row3_f32"]), values(&plain.i(3).unwrap()));
    assert_eq!(values(&t["cols_f32"]), values(&plain.i((2..5, 10..14)).unwrap()));
    assert_eq!(values(&t["as_f64"]), values(plain));
    assert_eq!(values(&t["as_f16"]), values(plain));
    // bf16 keeps 8 significant bits: relative error ≤ 2^-8.
    for (a, b) in values(&t["as_bf16"]).iter().zip(values(plain)) {
        assert!((a - b).abs() <= b.abs() / 256.0, "{a} vs {b}");
    }
    assert_eq!(t["scalar_f32"].dims(), &[] as &[usize]);
    assert_eq!(t["scalar_f32"].to_scalar::<f32>().unwrap(), 2.5);
}

#[test]
fn strict_check_reports_missing_extra_and_misshaped_tensors() {
    let dir = tempfile::tempdir().unwrap();
    let mut tensors = expected();
    tensors.remove("head.4.bias").unwrap();
    tensors.insert(
        "decoder.extra.weight".into(),
        Tensor::zeros((2, 3), DType::F32, &Device::Cpu).unwrap(),
    );
    tensors.insert(
        "fov.head.4.weight".into(),
        Tensor::zeros((1, 4, 5, 5), DType::F32, &Device::Cpu).unwrap(),
    );
    let path = save(&tensors, dir.path(), "broken.safetensors");
    let w = load_weights(&path, DType::F32, &Device::Cpu).unwrap();
    let err = build_tiny(&w).unwrap_err();
    let ModelError::StrictLoad { report, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(report.missing.len(), 1);
    assert_eq!(
        (
            report.missing[0].name.as_str(),
            report.missing[0].expected.clone()
        ),
        ("head.4.bias", Some(vec![1]))
    );
    assert_eq!(report.mismatched.len(), 1);
    let m = &report.mismatched[0];
    assert_eq!(
        (m.name.as_str(), m.expected.as_slice(), m.found.as_slice()),
        ("fov.head.4.weight", &[1, 4, 6, 6][..], &[1, 4, 5, 5][..])
    );
    assert_eq!(report.unused.len(), 1);
    assert_eq!(report.unused[0].name, "decoder.extra.weight");
    let text = err.to_string();
    for needle in [
        "1 missing: head.4.bias [1]",
        "fov.head.4.weight expected [1, 4, 6, 6] found [1, 4, 5, 5]",
        "1 unexpected: decoder.extra.weight [2, 3]",
    ] {
        assert!(text.contains(needle), "{needle:?} not in {text}");
    }
    assert_ends_with_path(&err, &path);
}

#[test]
fn strict_check_lists_many_missing_tensors_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let mut tensors = expected();
    tensors.retain(|k, _| !k.starts_with("encoder.image_encoder."));
    let path = save(&tensors, dir.path(), "no_image_encoder.safetensors");
    let err = build_tiny(&load_weights(&path, DType::F32, &Device::Cpu).unwrap()).unwrap_err();
    let ModelError::StrictLoad { report, .. } = &err else {
        panic!("{err}")
    };
    // 4 + 2 blocks · 14 + 2 tensors per ViT.
    assert_eq!(report.missing.len(), 34);
    assert!(report.mismatched.is_empty() && report.unused.is_empty());
    assert!(
        err.to_string()
            .contains("34 missing: encoder.image_encoder.blocks.0.attn.proj.bias [64]"),
        "{err}"
    );
    assert!(err.to_string().contains("… and 26 more"), "{err}");
}

#[test]
fn strict_tracker_without_build_closure() {
    let w = load_weights(&fixture("tiny_apple.safetensors"), DType::F32, &Device::Cpu).unwrap();
    let (vb, tracker) = w.strict_var_builder();
    let _ = vb.get((1, 32, 1, 1), "head.4.weight").unwrap();
    let _ = vb.pp("head").get(7, "nothing").unwrap(); // served as zeros, recorded as missing
    let report = tracker.report();
    assert_eq!(report.missing.len(), 1);
    assert_eq!(report.missing[0].name, "head.nothing");
    assert_eq!(report.unused.len(), TINY_TENSORS - 1);
    assert!(matches!(tracker.finish(), Err(ModelError::StrictLoad { .. })));
}

#[test]
fn truncated_pt_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(fixture("tiny_apple_fp16.pt")).unwrap();
    for keep in [bytes.len() * 6 / 10, bytes.len() - 10] {
        let path = dir.path().join(format!("cut_{keep}.pt"));
        std::fs::write(&path, &bytes[..keep]).unwrap();
        let err = load_err(&path);
        assert!(matches!(err, ModelError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains("download it again"), "{err}");
        assert_ends_with_path(&err, &path);
    }
}

#[test]
fn damaged_pt_storage_fails_its_crc() {
    // One flipped bit in the middle of a tensor storage: the zip entry's CRC-32 catches it.
    let dir = tempfile::tempdir().unwrap();
    let source = fixture("tiny_apple_fp16.pt");
    let mut bytes = std::fs::read(&source).unwrap();
    let mut zip = zip::ZipArchive::new(std::fs::File::open(&source).unwrap()).unwrap();
    let names: Vec<String> = zip
        .file_names()
        .filter_map(|n| n.ok().map(|n| n.into_owned()))
        .collect();
    let (start, size) = names
        .iter()
        .filter(|n| n.contains("/data/"))
        .map(|n| {
            let entry = zip.by_name_raw(n.as_bytes()).unwrap();
            (entry.data_start().unwrap(), entry.size())
        })
        .max_by_key(|&(_, size)| size)
        .unwrap();
    bytes[(start + size / 2) as usize] ^= 0x10;
    let path = dir.path().join("damaged.pt");
    std::fs::write(&path, &bytes).unwrap();
    let err = load_err(&path);
    assert!(matches!(err, ModelError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("CRC-32"), "{err}");
    assert_ends_with_path(&err, &path);
}

#[test]
fn truncated_safetensors_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(fixture("tiny_hf.safetensors")).unwrap();
    // Cut inside the data, and cut inside the JSON header.
    for keep in [bytes.len() - 1000, 100] {
        let path = dir.path().join(format!("cut_{keep}.safetensors"));
        std::fs::write(&path, &bytes[..keep]).unwrap();
        let err = load_err(&path);
        assert!(matches!(err, ModelError::Corrupt { .. }), "{err}");
        assert_ends_with_path(&err, &path);
    }
}

#[test]
fn legacy_pt_is_reported() {
    // Start of a pre-1.6 torch.save file: pickle protocol 2, then the LONG1 magic number
    // 0x1950a86a20f9469cfc6c (torch/serialization.py MAGIC_NUMBER).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("legacy.pt");
    std::fs::write(
        &path,
        b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19.\x80\x02M\xe9\x03.",
    )
    .unwrap();
    let err = load_err(&path);
    assert!(matches!(err, ModelError::LegacyPickle { .. }), "{err}");
    assert!(err.to_string().contains("torch.save(torch.load("), "{err}");
    assert_ends_with_path(&err, &path);
}

#[test]
fn nested_state_dict_is_reported() {
    let path = fixture("nested_state_dict.pt");
    let err = load_err(&path);
    let ModelError::NestedStateDict { keys, inner, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(inner, "state_dict");
    assert!(keys.contains("state_dict") && keys.contains("epoch"), "{keys}");
    assert!(err.to_string().contains("['state_dict']"), "{err}");
    assert_ends_with_path(&err, &path);
}

#[test]
fn non_finite_weights_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    for (dtype, value) in [
        (DType::F32, f32::NAN),
        (DType::F16, f32::INFINITY),
        (DType::BF16, f32::NAN),
    ] {
        let mut tensors = expected();
        let bad = Tensor::new(&[0.5f32, value, 1.0], &Device::Cpu)
            .unwrap()
            .to_dtype(dtype)
            .unwrap();
        tensors.insert("head.2.bias".into(), bad);
        let path = save(&tensors, dir.path(), &format!("nan_{dtype:?}.safetensors"));
        let err = load_err(&path);
        let ModelError::NonFiniteWeight { name, .. } = &err else {
            panic!("{err}")
        };
        assert_eq!(name, "head.2.bias");
        assert!(err.to_string().contains("1 NaN/inf"), "{err}");
        assert_ends_with_path(&err, &path);
    }
}

#[test]
fn values_beyond_f16_are_rejected_when_loading_as_f16() {
    let dir = tempfile::tempdir().unwrap();
    let mut tensors = expected();
    tensors.insert(
        "head.4.bias".into(),
        Tensor::new(&[1.0e6f32], &Device::Cpu).unwrap(),
    );
    let path = save(&tensors, dir.path(), "big.safetensors");
    assert!(load_weights(&path, DType::F32, &Device::Cpu).is_ok());
    let err = load_weights(&path, DType::F16, &Device::Cpu).unwrap_err();
    assert!(
        matches!(&err, ModelError::NonFiniteWeight { name, .. } if name == "head.4.bias"),
        "{err}"
    );
    assert!(err.to_string().contains("load the weights as f32"), "{err}");
}

#[test]
fn incomplete_hf_attention_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let mut tensors = candle_core::safetensors::load(fixture("tiny_hf.safetensors"), &Device::Cpu).unwrap();
    tensors
        .remove("depth_pro.encoder.image_encoder.model.encoder.layer.1.attention.attention.value.weight")
        .unwrap();
    let path = save(&tensors, dir.path(), "no_value.safetensors");
    let err = load_err(&path);
    assert!(matches!(err, ModelError::IncompleteQkv { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("encoder.image_encoder.blocks.1.attn.qkv.weight (no value)"),
        "{err}"
    );
}

#[test]
fn unknown_and_foreign_files_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &[u8], &str); 5] = [
        (
            "page.pt",
            b"<!DOCTYPE html><html><body>Not found</body></html>",
            "HTML",
        ),
        (
            "lfs.pt",
            b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 1904446787\n",
            "git lfs pull",
        ),
        (
            "noise.bin",
            b"\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c",
            "first bytes 01 02 03",
        ),
        ("short.pt", b"abc", "only 3 bytes"),
        ("empty.pt", b"", "only 0 bytes"),
    ];
    for (name, bytes, needle) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let err = load_err(&path);
        assert!(err.to_string().contains(needle), "{name}: {err}");
        assert_ends_with_path(&err, &path);
    }
    // A valid safetensors file without Depth Pro tensors.
    let other: HashMap<String, Tensor> = [(
        "model.weight".to_string(),
        Tensor::zeros(2, DType::F32, &Device::Cpu).unwrap(),
    )]
    .into_iter()
    .collect();
    let path = save(&other, dir.path(), "other.safetensors");
    let err = load_err(&path);
    assert!(
        matches!(err, ModelError::NotDepthPro { .. }) && err.to_string().contains("model.weight"),
        "{err}"
    );
    // A missing file.
    let err = load_err(&dir.path().join("absent.pt"));
    assert!(matches!(err, ModelError::Io { .. }), "{err}");
}

#[test]
fn safetensors_header_length_bytes_do_not_confuse_detection() {
    // The first byte of a safetensors file is the low byte of the header length: 0x80 looks like a
    // pickle opcode and 0x3c like '<'. Header padded with spaces (allowed by the format).
    let dir = tempfile::tempdir().unwrap();
    for header_len in [0x80usize, 0x13c] {
        let mut header = br#"{"head.4.bias":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#.to_vec();
        header.resize(header_len, b' ');
        let mut bytes = (header_len as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(&header);
        bytes.extend_from_slice(&1.5f32.to_le_bytes());
        let path = dir.path().join(format!("h{header_len}.safetensors"));
        std::fs::write(&path, &bytes).unwrap();
        let t = read_tensors(&path, DType::F32, &Device::Cpu).unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(values(&t[0].1), vec![1.5]);
    }
}

/// The official checkpoint (or any full-size one) at `DEPTH2PLY_WEIGHTS`: 1119 tensors, 951,991,330
/// parameters (spec §1), used exactly by the full network. Not run by default: needs the 1.9 GB file.
#[test]
#[ignore = "needs depth_pro.pt: DEPTH2PLY_WEIGHTS=/path/depth_pro.pt cargo test -p depth2ply-model --test weights -- --ignored"]
fn full_checkpoint_loads_strictly() {
    let path = PathBuf::from(std::env::var_os("DEPTH2PLY_WEIGHTS").expect("set DEPTH2PLY_WEIGHTS"));
    let start = std::time::Instant::now();
    let w = load_weights(&path, DType::F32, &Device::Cpu).unwrap();
    let loaded = start.elapsed();
    assert_eq!((w.len(), w.parameter_count()), (1119, 951_991_330));
    w.build_strict(|vb| DepthProNetwork::load(&DepthProConfig::full(), vb))
        .unwrap();
    eprintln!(
        "loaded in {loaded:.2?}, built in {:.2?}",
        start.elapsed() - loaded
    );
}
