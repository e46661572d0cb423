//! Checkpoint save/load round trips and strict-load errors (CPU only).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use bitprop::checkpoint::{self, Checkpoint, CheckpointError, TensorData};

/// A fresh, empty directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "bitprop-test-ckpt-{}-{tag}-{n}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn assert_msg(err: CheckpointError, parts: &[&str]) {
    let msg = err.to_string();
    for p in parts {
        assert!(msg.contains(p), "error message {msg:?} lacks {p:?}");
    }
}

/// Values that stress bit-exactness: signed zero, subnormals, extremes,
/// infinities, and a NaN with a payload.
fn tricky_values() -> Vec<f32> {
    vec![
        0.0,
        -0.0,
        1.0,
        -1.5,
        f32::MIN_POSITIVE,
        f32::from_bits(1), // smallest subnormal
        f32::MAX,
        f32::MIN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::from_bits(0x7fc0_1234),
        std::f32::consts::PI,
    ]
}

fn model() -> Vec<(String, Vec<usize>, Vec<f32>)> {
    vec![
        ("fc1.weight".into(), vec![3, 4], tricky_values()),
        ("fc1.bias".into(), vec![3], vec![0.25, -7.0, 1e-30]),
        ("bn.gamma".into(), vec![1], vec![2.0]),
        ("empty".into(), vec![0, 5], vec![]),
    ]
}

fn expected(m: &[(String, Vec<usize>, Vec<f32>)]) -> Vec<(String, Vec<usize>)> {
    m.iter().map(|(n, s, _)| (n.clone(), s.clone())).collect()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn round_trip_is_bit_exact_with_metadata() {
    let dir = TempDir::new("rt");
    let p = dir.path("model.safetensors");
    let m = model();
    let meta = BTreeMap::from([
        ("arch".to_string(), "mlp-784-256-10".to_string()),
        ("epoch".to_string(), "3".to_string()),
    ]);
    checkpoint::save(&p, &m, meta.clone()).unwrap();
    assert!(
        !checkpoint::temp_path(&p).exists(),
        "temporary file left behind"
    );

    let mut ck = checkpoint::load(&p).unwrap();
    assert_eq!(ck.metadata, meta);
    assert_eq!(ck.path, p);
    let values = ck.take_strict(&expected(&m)).unwrap();
    for ((name, _, want), got) in m.iter().zip(&values) {
        assert_eq!(bits(got), bits(want), "tensor {name}");
    }
    assert!(ck.tensors.is_empty());
}

#[test]
fn save_overwrites_atomically_and_ints_round_trip() {
    let dir = TempDir::new("ints");
    let p = dir.path("state.safetensors");
    checkpoint::save(&p, &model(), BTreeMap::new()).unwrap();
    let floats = vec![("w".to_string(), vec![2], vec![1.0f32, -1.0])];
    let rng_state: u64 = 0xDEAD_BEEF_F00D_CAFE; // above i64::MAX: stored by bit pattern
    let ints = vec![
        ("step".to_string(), vec![1], vec![123_456_789_012i64]),
        ("rng".to_string(), vec![2], vec![rng_state as i64, -1]),
    ];
    checkpoint::save_with_ints(&p, &floats, &ints, BTreeMap::new()).unwrap();

    let mut ck = checkpoint::load(&p).unwrap();
    assert!(ck.metadata.is_empty());
    assert_eq!(ck.take_i64("step", &[1]).unwrap(), vec![123_456_789_012]);
    let rng = ck.take_i64("rng", &[2]).unwrap();
    assert_eq!(rng[0] as u64, rng_state);
    assert_eq!(rng[1], -1);
    assert_eq!(
        ck.take_strict(&[("w".to_string(), vec![2])]).unwrap(),
        vec![vec![1.0, -1.0]]
    );
}

#[test]
fn general_save_handles_all_dtypes() {
    let dir = TempDir::new("general");
    let p = dir.path("mixed.safetensors");
    let tensors = vec![
        ("a".to_string(), vec![2], TensorData::F32(vec![0.5, 1.5])),
        ("b".to_string(), vec![1, 1], TensorData::I64(vec![i64::MIN])),
        (
            "c".to_string(),
            vec![3],
            TensorData::U64(vec![0, 1, u64::MAX]),
        ),
    ];
    checkpoint::save_tensors(&p, &tensors, BTreeMap::new()).unwrap();
    let ck = checkpoint::load(&p).unwrap();
    let want: BTreeMap<_, _> = tensors.into_iter().map(|(n, s, d)| (n, (s, d))).collect();
    assert_eq!(ck.tensors, want);
}

/// The byte layout a PyTorch reader relies on: u64 LE header length, JSON
/// header with `__metadata__`, F32 data little-endian right after it.
#[test]
fn file_layout_is_plain_safetensors() {
    let dir = TempDir::new("layout");
    let p = dir.path("m.safetensors");
    let meta = BTreeMap::from([("k".to_string(), "v".to_string())]);
    checkpoint::save(&p, &[("x".into(), vec![2], vec![1.0, -2.0])], meta).unwrap();
    let bytes = std::fs::read(&p).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    assert_eq!(header["x"]["dtype"], "F32");
    assert_eq!(header["x"]["shape"], serde_json::json!([2]));
    assert_eq!(header["x"]["data_offsets"], serde_json::json!([0, 8]));
    assert_eq!(header["__metadata__"]["k"], "v");
    let data = &bytes[8 + n..];
    assert_eq!(
        data,
        [1.0f32.to_le_bytes(), (-2.0f32).to_le_bytes()].concat()
    );
}

fn saved(tag: &str) -> (TempDir, PathBuf, Checkpoint) {
    let dir = TempDir::new(tag);
    let p = dir.path("model.safetensors");
    checkpoint::save(&p, &model(), BTreeMap::new()).unwrap();
    let ck = checkpoint::load(&p).unwrap();
    (dir, p, ck)
}

#[test]
fn strict_missing_tensor() {
    let (_dir, _p, mut ck) = saved("missing");
    let mut exp = expected(&model());
    exp.push(("fc2.weight".into(), vec![10, 3]));
    assert_msg(
        ck.take_strict(&exp).unwrap_err(),
        &["model.safetensors", "`fc2.weight`", "missing"],
    );
    // A failed take removes nothing: the right expectation still succeeds.
    let values = ck.take_strict(&expected(&model())).unwrap();
    assert_eq!(bits(&values[0]), bits(&tricky_values()));
}

#[test]
fn strict_unexpected_tensor() {
    let (_dir, _p, mut ck) = saved("extra");
    let exp: Vec<_> = expected(&model())
        .into_iter()
        .filter(|(n, _)| n != "bn.gamma")
        .collect();
    assert_msg(
        ck.take_strict(&exp).unwrap_err(),
        &["model.safetensors", "unexpected", "`bn.gamma`"],
    );
}

#[test]
fn strict_wrong_shape() {
    let (_dir, _p, mut ck) = saved("shape");
    let mut exp = expected(&model());
    exp[0].1 = vec![4, 3];
    assert_msg(
        ck.take_strict(&exp).unwrap_err(),
        &[
            "model.safetensors",
            "`fc1.weight`",
            "shape [3, 4]",
            "expected [4, 3]",
        ],
    );
}

#[test]
fn strict_wrong_dtype() {
    let dir = TempDir::new("dtype");
    let p = dir.path("ints.safetensors");
    checkpoint::save_with_ints(
        &p,
        &[("w".into(), vec![1], vec![1.0])],
        &[("b".into(), vec![2], vec![1, 2])],
        BTreeMap::new(),
    )
    .unwrap();
    let mut ck = checkpoint::load(&p).unwrap();
    assert_msg(
        ck.take_strict(&[("w".into(), vec![1]), ("b".into(), vec![2])])
            .unwrap_err(),
        &["ints.safetensors", "`b`", "dtype I64", "expected F32"],
    );
    assert_msg(
        ck.take_i64("w", &[1]).unwrap_err(),
        &["ints.safetensors", "`w`", "dtype F32", "expected I64"],
    );
}

#[test]
fn unsupported_dtype_is_named_at_load() {
    // An F16 tensor written by hand (as another tool might).
    let dir = TempDir::new("f16");
    let p = dir.path("half.safetensors");
    let header = br#"{"h":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header);
    bytes.extend_from_slice(&[0, 60, 0, 188]);
    std::fs::write(&p, bytes).unwrap();
    assert_msg(
        checkpoint::load(&p).unwrap_err(),
        &["half.safetensors", "`h`", "F16"],
    );
}

#[test]
fn corrupt_header_names_the_file() {
    let dir = TempDir::new("corrupt");
    let cases: [(&str, Vec<u8>); 3] = [
        (
            "text.safetensors",
            b"this is not a safetensors file at all".to_vec(),
        ),
        ("tiny.safetensors", vec![1, 2, 3]),
        ("badjson.safetensors", {
            let h = b"{not json}";
            let mut v = (h.len() as u64).to_le_bytes().to_vec();
            v.extend_from_slice(h);
            v
        }),
    ];
    for (name, bytes) in cases {
        let p = dir.path(name);
        std::fs::write(&p, bytes).unwrap();
        assert_msg(
            checkpoint::load(&p).unwrap_err(),
            &[name, "not a valid safetensors file"],
        );
    }
    assert_msg(
        checkpoint::load(&dir.path("absent.safetensors")).unwrap_err(),
        &["absent.safetensors", "cannot read"],
    );
}

#[test]
fn truncated_file_names_the_file() {
    let dir = TempDir::new("trunc");
    let p = dir.path("model.safetensors");
    checkpoint::save(&p, &model(), BTreeMap::new()).unwrap();
    let bytes = std::fs::read(&p).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    // Cut inside the data, and inside the header.
    for (tag, cut) in [("data", bytes.len() - 4), ("header", 8 + n / 2)] {
        let name = format!("cut-{tag}.safetensors");
        let q = dir.path(&name);
        std::fs::write(&q, &bytes[..cut]).unwrap();
        assert_msg(
            checkpoint::load(&q).unwrap_err(),
            &[&name, "not a valid safetensors file"],
        );
    }
}

#[test]
fn save_rejects_bad_input_naming_the_tensor() {
    let dir = TempDir::new("badsave");
    let p = dir.path("x.safetensors");
    assert_msg(
        checkpoint::save(
            &p,
            &[
                ("a".into(), vec![1], vec![1.0]),
                ("a".into(), vec![1], vec![2.0]),
            ],
            BTreeMap::new(),
        )
        .unwrap_err(),
        &["x.safetensors", "`a`", "twice"],
    );
    assert_msg(
        checkpoint::save(
            &p,
            &[("w".into(), vec![2, 2], vec![1.0; 3])],
            BTreeMap::new(),
        )
        .unwrap_err(),
        &["x.safetensors", "`w`", "[2, 2]", "3 values"],
    );
    assert!(!p.exists());
    // A directory that does not exist: the error names the temporary file.
    let q = dir.path("no/such/dir/x.safetensors");
    assert_msg(
        checkpoint::save(&q, &model(), BTreeMap::new()).unwrap_err(),
        &["x.safetensors.tmp", "cannot create"],
    );
}
