//! Every bad input the command line meets ends the same way: exit status 1,
//! one `error:` line on stderr that names the file, field or shape at fault,
//! and no panic. Each case runs the built `bitprop` binary.
//!
//! Data cases train on a temporary directory of small generated IDX files
//! (80 training and 20 test images of 28x28), so the device work is tiny;
//! checkpoint cases damage a checkpoint written by a one-epoch run on them.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use bitprop::checkpoint::{self, TensorData};

/// A fresh, empty directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "bitprop-test-errors-{}-{tag}-{n}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
    fn str(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `bitprop args`. `XDG_RUNTIME_DIR` points at a private directory so
/// that Mesa's EGL probe (GL backend) does not print its own complaint about
/// a missing one, which would be a second `error:` line that is not ours.
fn run(args: &[&str]) -> Output {
    let xdg = TempDir::new("xdg");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&xdg.0, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    Command::new(env!("CARGO_BIN_EXE_bitprop"))
        .args(args)
        .env("XDG_RUNTIME_DIR", &xdg.0)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("bitprop runs")
}

/// Asserts that `bitprop args` fails cleanly: exit status 1, or 2 for a
/// command-line usage error from clap (not a panic's 101 or an abort's
/// signal), no "panicked" anywhere on stderr, exactly one
/// line starting with `error:`, and that line contains every one of
/// `parts`. Returns that line.
#[track_caller]
fn expect_error(args: &[&str], parts: &[&str]) -> String {
    let out = run(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("panicked"),
        "bitprop {args:?} panicked:\n{stderr}"
    );
    assert!(
        matches!(out.status.code(), Some(1 | 2)),
        "bitprop {args:?} should exit with status 1 or 2, got {:?}; stderr:\n{stderr}",
        out.status
    );
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(
        errors.len(),
        1,
        "bitprop {args:?}: expected one error line, stderr:\n{stderr}"
    );
    let line = errors[0];
    for p in parts {
        assert!(
            line.contains(p),
            "bitprop {args:?}: error line {line:?} lacks {p:?}"
        );
    }
    line.to_string()
}

fn idx_bytes(magic: u32, dims: &[u32], body: &[u8]) -> Vec<u8> {
    let mut v = magic.to_be_bytes().to_vec();
    for d in dims {
        v.extend(d.to_be_bytes());
    }
    v.extend_from_slice(body);
    v
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

const TRAIN_IMAGES: &str = "train-images-idx3-ubyte";
const TRAIN_LABELS: &str = "train-labels-idx1-ubyte";
const TEST_IMAGES: &str = "t10k-images-idx3-ubyte";
const TEST_LABELS: &str = "t10k-labels-idx1-ubyte";
const N_TRAIN: u32 = 80;

fn images(n: u32) -> Vec<u8> {
    idx_bytes(
        0x803,
        &[n, 28, 28],
        &(0..n * 784)
            .map(|i| (i * 7 % 256) as u8)
            .collect::<Vec<_>>(),
    )
}

fn labels(n: u32) -> Vec<u8> {
    idx_bytes(
        0x801,
        &[n],
        &(0..n).map(|i| (i % 10) as u8).collect::<Vec<_>>(),
    )
}

/// A complete, valid raw data set: 80 training and 20 test images.
fn data_dir(tag: &str) -> TempDir {
    let dir = TempDir::new(tag);
    for (name, bytes) in [
        (TRAIN_IMAGES, images(N_TRAIN)),
        (TRAIN_LABELS, labels(N_TRAIN)),
        (TEST_IMAGES, images(20)),
        (TEST_LABELS, labels(20)),
    ] {
        std::fs::write(dir.path(name), bytes).unwrap();
    }
    dir
}

/// `bitprop train` on `data` for one short epoch, writing into `out`.
fn train_args<'a>(data: &'a TempDir, out: &'a TempDir) -> Vec<&'a str> {
    vec![
        "train",
        "--data",
        data.str(),
        "--out",
        out.str(),
        "--epochs",
        "1",
        "--limit-train",
        "64",
        "--val",
        "0",
    ]
}

/// Damages a valid data set with `damage`, then expects `train` to fail
/// with a message containing `parts`.
#[track_caller]
fn expect_data_error(tag: &str, damage: impl FnOnce(&TempDir), parts: &[&str]) -> String {
    let data = data_dir(tag);
    let out = TempDir::new("out");
    damage(&data);
    expect_error(&train_args(&data, &out), parts)
}

#[test]
fn data_directory_missing_a_file() {
    expect_data_error(
        "missing",
        |d| std::fs::remove_file(d.path(TEST_LABELS)).unwrap(),
        &[
            "no test labels",
            "tried t10k-labels-idx1-ubyte, t10k-labels-idx1-ubyte.gz",
        ],
    );
    let out = TempDir::new("out");
    let absent = out.path("no-such-dir");
    expect_error(
        &[
            "train",
            "--data",
            absent.to_str().unwrap(),
            "--out",
            out.str(),
        ],
        &["no-such-dir", "data directory does not exist"],
    );
}

#[test]
fn idx_bad_magic_number() {
    expect_data_error(
        "magic",
        |d| {
            let mut b = images(N_TRAIN);
            b[2] = 0x09; // element type byte: not u8
            std::fs::write(d.path(TRAIN_IMAGES), b).unwrap();
        },
        &[
            TRAIN_IMAGES,
            "bad IDX magic number 0x00000903",
            "expected 0x00000803",
        ],
    );
}

#[test]
fn idx_wrong_dimensions() {
    // A 2-D header where images need 3 dimensions.
    expect_data_error(
        "ndim",
        |d| {
            let b = idx_bytes(0x802, &[N_TRAIN, 784], &vec![0; N_TRAIN as usize * 784]);
            std::fs::write(d.path(TRAIN_IMAGES), b).unwrap();
        },
        &[TRAIN_IMAGES, "IDX header declares 2 dimensions, expected 3"],
    );
    // Well-formed files of 4x4 images: the models take 28x28 (this used to
    // panic in Tensor::from_f32 at the first batch).
    expect_data_error(
        "size",
        |d| {
            for (name, n) in [(TRAIN_IMAGES, N_TRAIN), (TEST_IMAGES, 20)] {
                let b = idx_bytes(0x803, &[n, 4, 4], &vec![0; n as usize * 16]);
                std::fs::write(d.path(name), b).unwrap();
            }
        },
        &[TRAIN_IMAGES, "images are 4x4, expected 28x28"],
    );
    // Train and test images of different sizes.
    expect_data_error(
        "mixed",
        |d| {
            let b = idx_bytes(0x803, &[20, 28, 27], &vec![0; 20 * 28 * 27]);
            std::fs::write(d.path(TEST_IMAGES), b).unwrap();
        },
        &[TRAIN_IMAGES, TEST_IMAGES, "28x28", "28x27"],
    );
}

#[test]
fn idx_truncated_data() {
    expect_data_error(
        "trunc",
        |d| {
            let b = images(N_TRAIN);
            std::fs::write(d.path(TRAIN_IMAGES), &b[..b.len() - 100]).unwrap();
        },
        &[
            TRAIN_IMAGES,
            "truncated IDX data: expected 62720 bytes, found 62620",
        ],
    );
    expect_data_error(
        "trunc-header",
        |d| std::fs::write(d.path(TRAIN_LABELS), [0, 0, 8, 1, 0, 0]).unwrap(),
        &[
            TRAIN_LABELS,
            "truncated IDX header: expected 8 bytes, found 6",
        ],
    );
    // A header claiming 2^31 - 1 images over a body of one image: rejected
    // from the file length, before anything of that size is allocated.
    expect_data_error(
        "claims",
        |d| {
            let b = idx_bytes(0x803, &[i32::MAX as u32, 28, 28], &[0; 784]);
            std::fs::write(d.path(TRAIN_IMAGES), b).unwrap();
        },
        &[
            TRAIN_IMAGES,
            "truncated IDX data: expected 1683627179248 bytes, found 784",
        ],
    );
}

#[test]
fn labels_out_of_range() {
    expect_data_error(
        "label",
        |d| {
            let mut body: Vec<u8> = (0..N_TRAIN).map(|i| (i % 10) as u8).collect();
            body[41] = 10;
            std::fs::write(d.path(TRAIN_LABELS), idx_bytes(0x801, &[N_TRAIN], &body)).unwrap();
        },
        &[TRAIN_LABELS, "label at index 41 is 10, outside 0..10"],
    );
}

#[test]
fn image_and_label_counts_differ() {
    expect_data_error(
        "count",
        |d| std::fs::write(d.path(TRAIN_LABELS), labels(N_TRAIN - 1)).unwrap(),
        &[
            TRAIN_IMAGES,
            "holds 80 images but",
            TRAIN_LABELS,
            "holds 79 labels",
        ],
    );
}

#[test]
fn truncated_gzip_stream() {
    let cut_gzip = |d: &TempDir| {
        let gz = gzip(&images(N_TRAIN));
        std::fs::remove_file(d.path(TRAIN_IMAGES)).unwrap();
        std::fs::write(d.path(&format!("{TRAIN_IMAGES}.gz")), &gz[..gz.len() / 2]).unwrap();
    };
    let msg = expect_data_error(
        "gz",
        cut_gzip,
        &[
            "train-images-idx3-ubyte.gz",
            "gzip stream is truncated or corrupt",
        ],
    );
    // The cause is said once, not repeated by the error chain.
    let cause = msg.rsplit(": ").next().unwrap();
    assert_eq!(msg.matches(cause).count(), 1, "{msg}");

    // Cut inside the 8-byte trailer: the data is complete, the CRC is not.
    expect_data_error(
        "gz-trailer",
        |d| {
            let gz = gzip(&labels(N_TRAIN));
            std::fs::remove_file(d.path(TRAIN_LABELS)).unwrap();
            std::fs::write(d.path(&format!("{TRAIN_LABELS}.gz")), &gz[..gz.len() - 3]).unwrap();
        },
        &["train-labels-idx1-ubyte.gz", "truncated"],
    );
}

/// A one-epoch run on the toy data: its model checkpoint, for `eval` cases.
fn trained_checkpoint(data: &TempDir, out: &TempDir) -> PathBuf {
    let o = run(&train_args(data, out));
    assert!(
        o.status.success(),
        "fixture training failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    out.path("last.safetensors")
}

/// Writes `ck` with `edit` applied to its tensors (metadata kept).
fn rewrite(
    ck: &checkpoint::Checkpoint,
    path: &Path,
    edit: impl FnOnce(&mut BTreeMap<String, (Vec<usize>, TensorData)>),
) {
    let mut tensors = ck.tensors.clone();
    edit(&mut tensors);
    let list: Vec<(String, Vec<usize>, TensorData)> =
        tensors.into_iter().map(|(n, (s, d))| (n, s, d)).collect();
    checkpoint::save_tensors(path, &list, ck.metadata.clone()).unwrap();
}

/// Raw safetensors bytes: an 8-byte little-endian header length, the header,
/// the data.
fn safetensors_bytes(header: &[u8], data: &[u8]) -> Vec<u8> {
    let mut v = (header.len() as u64).to_le_bytes().to_vec();
    v.extend_from_slice(header);
    v.extend_from_slice(data);
    v
}

#[test]
fn bad_checkpoints_and_eval_data() {
    let data = data_dir("ck-data");
    let out = TempDir::new("ck-out");
    let good = trained_checkpoint(&data, &out);
    let ck = checkpoint::load(&good).unwrap();
    let dir = TempDir::new("ck");
    let eval = |path: &Path, parts: &[&str]| {
        expect_error(
            &[
                "eval",
                "--checkpoint",
                path.to_str().unwrap(),
                "--data",
                data.str(),
            ],
            parts,
        )
    };

    // The untouched checkpoint evaluates: the damage below is what fails.
    let o = run(&[
        "eval",
        "--checkpoint",
        good.to_str().unwrap(),
        "--data",
        data.str(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // A 2-D tensor stored transposed.
    let (name, shape) = ck
        .tensors
        .iter()
        .find(|(_, (s, _))| s.len() == 2 && s[0] != s[1])
        .map(|(n, (s, _))| (n.clone(), s.clone()))
        .expect("the model has a non-square matrix");
    let swapped = vec![shape[1], shape[0]];
    let p = dir.path("shape.safetensors");
    rewrite(&ck, &p, |t| t.get_mut(&name).unwrap().0 = swapped.clone());
    eval(
        &p,
        &[
            "shape.safetensors",
            &format!("tensor `{name}` has shape {swapped:?}, expected {shape:?}"),
        ],
    );

    // A missing tensor.
    let victim = ck.tensors.keys().next().unwrap().clone();
    let p = dir.path("missing.safetensors");
    rewrite(&ck, &p, |t| {
        t.remove(&victim);
    });
    eval(
        &p,
        &[
            "missing.safetensors",
            &format!("tensor `{victim}` is missing"),
        ],
    );

    // An extra tensor.
    let p = dir.path("extra.safetensors");
    rewrite(&ck, &p, |t| {
        t.insert("stray".into(), (vec![1], TensorData::F32(vec![0.0])));
    });
    eval(&p, &["extra.safetensors", "unexpected tensor(s) `stray`"]);

    // A wrong dtype bitprop reads (I64 where F32 is expected)...
    let p = dir.path("dtype.safetensors");
    rewrite(&ck, &p, |t| {
        let (s, d) = t.get_mut(&victim).unwrap();
        *d = TensorData::I64(vec![0; s.iter().product()]);
    });
    eval(
        &p,
        &[
            "dtype.safetensors",
            &format!("tensor `{victim}` has dtype I64, expected F32"),
        ],
    );
    // ...and one it does not read at all (F16, written by another tool).
    let p = dir.path("f16.safetensors");
    let header = br#"{"__metadata__":{"model":"bmlp"},"w":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}"#;
    std::fs::write(&p, safetensors_bytes(header, &[0, 60, 0, 188])).unwrap();
    eval(
        &p,
        &[
            "f16.safetensors",
            "tensor `w` has dtype F16, which is not supported",
        ],
    );

    // Malformed headers: JSON cut short, a length beyond the file, offsets
    // past the data, and a text file.
    let bytes = std::fs::read(&good).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let p = dir.path("json.safetensors");
    let mut cut = bytes.clone();
    cut[8 + n / 2] = b'}';
    std::fs::write(&p, &cut).unwrap();
    eval(
        &p,
        &[
            "json.safetensors",
            "not a valid safetensors file: invalid JSON in header",
        ],
    );
    let p = dir.path("length.safetensors");
    let mut long = bytes.clone();
    long[..8].copy_from_slice(&(bytes.len() as u64).to_le_bytes());
    std::fs::write(&p, &long).unwrap();
    eval(&p, &["length.safetensors", "not a valid safetensors file"]);
    let p = dir.path("offsets.safetensors");
    let header = br#"{"__metadata__":{"model":"bmlp"},"w":{"dtype":"F32","shape":[1000000],"data_offsets":[0,4000000]}}"#;
    std::fs::write(&p, safetensors_bytes(header, &[0; 16])).unwrap();
    eval(&p, &["offsets.safetensors", "not a valid safetensors file"]);
    let p = dir.path("config.toml");
    std::fs::write(&p, "model = \"bmlp\"\n").unwrap();
    eval(&p, &["config.toml", "not a valid safetensors file"]);

    // A file that does not exist: the OS error once, not twice.
    let msg = eval(
        &dir.path("absent.safetensors"),
        &["absent.safetensors", "cannot read"],
    );
    let cause = msg.rsplit(": ").next().unwrap();
    assert_eq!(msg.matches(cause).count(), 1, "{msg}");

    // Valid checkpoint, truncated gzip data: `eval` reports it like `train`.
    let gz = gzip(&images(20));
    std::fs::remove_file(data.path(TEST_IMAGES)).unwrap();
    std::fs::write(data.path(&format!("{TEST_IMAGES}.gz")), &gz[..gz.len() / 2]).unwrap();
    eval(
        &good,
        &[
            "t10k-images-idx3-ubyte.gz",
            "gzip stream is truncated or corrupt",
        ],
    );
}

/// `bitprop train --config FILE` with `text` in FILE.
#[track_caller]
fn expect_config_error(text: &str, parts: &[&str]) -> String {
    let dir = TempDir::new("cfg");
    let cfg = dir.path("run.toml");
    std::fs::write(&cfg, text).unwrap();
    let out = dir.path("out");
    expect_error(
        &[
            "train",
            "--config",
            cfg.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        &parts
            .iter()
            .copied()
            .chain(["run.toml"])
            .collect::<Vec<_>>(),
    )
}

#[test]
fn config_file_unknown_key_and_values_out_of_range() {
    expect_config_error(
        "epochs = 2\nbogus = 1\n",
        &["line 2", "unknown field `bogus`", "expected one of `model`"],
    );
    // `batch` is a usize: TOML's -1 is a type error, named by field.
    expect_config_error(
        "batch = -1\n",
        &[
            "line 1, field `batch`",
            "integer `-1`, expected an integer >= 0",
        ],
    );
    expect_config_error(
        "lr = \"fast\"\n",
        &["line 1, field `lr`", "invalid type: string \"fast\""],
    );
    expect_config_error("model = \"bmlp\n", &["line 1"]);
}

#[test]
fn config_values_out_of_range_in_file_and_flags() {
    let dir = TempDir::new("cfgv");
    let out = dir.path("out");
    let out = out.to_str().unwrap();
    // File values that parse but no run can use.
    for (text, parts) in [
        (
            "epochs = 0\n",
            &["config field 'epochs' (--epochs): must be at least 1, got 0"][..],
        ),
        (
            "lr = nan\n",
            &["config field 'lr' (--lr): must be a finite number >= 0, got NaN"][..],
        ),
        ("batch = 0\n", &["config field 'batch'", "got 0"][..]),
    ] {
        let cfg = dir.path("v.toml");
        std::fs::write(&cfg, text).unwrap();
        expect_error(
            &["train", "--config", cfg.to_str().unwrap(), "--out", out],
            parts,
        );
    }
    // The same as flags.
    expect_error(
        &["train", "--epochs", "0", "--out", out],
        &["config field 'epochs' (--epochs): must be at least 1, got 0"],
    );
    expect_error(
        &["train", "--lr", "NaN", "--out", out],
        &["config field 'lr' (--lr)", "got NaN"],
    );
    expect_error(
        &["train", "--lr", "-1", "--out", out],
        &["config field 'lr' (--lr)", "got -1"],
    );
    expect_error(
        &["train", "--width", "0", "--out", out],
        &["config field 'width' (--width): must be in (0, 16], got 0"],
    );
    // A negative count is a bad value of its flag, not an unknown flag `-1`.
    expect_error(
        &["train", "--batch", "-1", "--out", out],
        &[
            "invalid value '-1' for '--batch <BATCH>'",
            "expected an integer >= 0",
        ],
    );
    expect_error(
        &["train", "--epochs", "99999999999999999999999", "--out", out],
        &["'--epochs <EPOCHS>'", "too large"],
    );
}

#[test]
fn buffer_larger_than_the_adapter_allows() {
    // C = [100000, 100000] f32 is 40 GB: the message gives the shape, the
    // bytes and the adapter's limit (whatever the adapter is).
    let msg = expect_error(
        &[
            "bench", "gemm", "--m", "100000", "--n", "100000", "--k", "64",
        ],
        &[
            "--m 100000 --n 100000 --k 64",
            "the output C of shape [100000, 100000]",
            "needs 40000000000 bytes",
            "allows in one storage buffer (",
        ],
    );
    let limit: u64 = msg
        .rsplit('(')
        .next()
        .and_then(|s| s.split(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no limit in {msg:?}"));
    assert!(limit > 0 && limit < 40_000_000_000, "{msg}");

    // Shapes whose byte count overflows u64 (these used to abort or panic
    // allocating host memory before any device check).
    expect_error(
        &[
            "bench",
            "gemm",
            "--m",
            "18446744073709551615",
            "--n",
            "2",
            "--k",
            "2",
        ],
        &[
            "A of shape [18446744073709551615, 2]",
            "needs over 2^64 bytes",
        ],
    );
    expect_error(
        &["bench", "train", "--batch", "18446744073709551615"],
        &[
            "--batch 18446744073709551615",
            "the input batch of shape [18446744073709551615, 1, 28, 28]",
        ],
    );
}

#[test]
fn no_adapter_for_the_requested_backend() {
    #[cfg(not(target_vendor = "apple"))]
    expect_error(
        &[
            "--backend",
            "metal",
            "bench",
            "gemm",
            "--m",
            "8",
            "--n",
            "8",
            "--k",
            "8",
        ],
        &[
            "--backend metal",
            "Metal (macOS and iOS only) is not available",
        ],
    );
    #[cfg(not(windows))]
    expect_error(
        &["--backend", "dx12", "devices"],
        &[
            "--backend dx12",
            "DirectX 12 (Windows only) is not available",
        ],
    );
    expect_error(
        &["--backend", "cuda", "devices"],
        &[
            "unknown backend 'cuda'",
            "expected auto, vulkan, metal, dx12 or gl",
        ],
    );
    for cmd in [
        &["devices"][..],
        &["bench", "gemm", "--m", "8", "--n", "8", "--k", "8"],
    ] {
        let mut args = vec!["--adapter", "no-such-gpu"];
        args.extend_from_slice(cmd);
        expect_error(
            &args,
            &[
                "no GPU adapter found",
                "matching 'no-such-gpu'",
                "adapters seen: [",
            ],
        );
    }
}
