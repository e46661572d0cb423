//! IDX reading, Fashion-MNIST loading, splits and batches (CPU only).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use bitprop::data::{self, Batch, Batches, DEFAULT_FASHION_MNIST_DIR, DataError, Dataset};

/// A fresh, empty directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "bitprop-test-data-{}-{tag}-{n}",
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

fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
}

/// Deterministic pseudo-random pixel bytes.
fn pixels(n: usize, salt: u32) -> Vec<u8> {
    (0..n as u32)
        .map(|i| (i.wrapping_mul(2654435761).wrapping_add(salt) >> 13) as u8)
        .collect()
}

/// Writes a complete toy data set (n_train/n_test images of rows x cols) into
/// `dir`, compressed or not, and returns the images and labels written.
fn write_toy_set(
    dir: &TempDir,
    n_train: usize,
    n_test: usize,
    gz: bool,
) -> (Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>) {
    let (rows, cols) = (28u32, 28u32);
    let p = (rows * cols) as usize;
    let tr_img = pixels(n_train * p, 1);
    let tr_lab: Vec<u8> = (0..n_train).map(|i| (i * 7 % 10) as u8).collect();
    let te_img = pixels(n_test * p, 2);
    let te_lab: Vec<u8> = (0..n_test).map(|i| (i * 3 % 10) as u8).collect();
    let files = [
        (
            "train-images-idx3-ubyte",
            idx_bytes(0x803, &[n_train as u32, rows, cols], &tr_img),
        ),
        (
            "train-labels-idx1-ubyte",
            idx_bytes(0x801, &[n_train as u32], &tr_lab),
        ),
        (
            "t10k-images-idx3-ubyte",
            idx_bytes(0x803, &[n_test as u32, rows, cols], &te_img),
        ),
        (
            "t10k-labels-idx1-ubyte",
            idx_bytes(0x801, &[n_test as u32], &te_lab),
        ),
    ];
    for (name, bytes) in files {
        if gz {
            write(&dir.path(&format!("{name}.gz")), &gzip(&bytes));
        } else {
            write(&dir.path(name), &bytes);
        }
    }
    (tr_img, tr_lab, te_img, te_lab)
}

fn assert_msg(err: DataError, parts: &[&str]) {
    let msg = err.to_string();
    for p in parts {
        assert!(msg.contains(p), "error message {msg:?} lacks {p:?}");
    }
}

#[test]
fn round_trip_raw_and_gzip() {
    for gz in [false, true] {
        let dir = TempDir::new(if gz { "rt-gz" } else { "rt-raw" });
        let (tr_img, tr_lab, te_img, te_lab) = write_toy_set(&dir, 37, 11, gz);
        let (train, test) = data::load_fashion_mnist(&dir.0).unwrap();
        assert_eq!((train.n, train.rows, train.cols), (37, 28, 28));
        assert_eq!((test.n, test.rows, test.cols), (11, 28, 28));
        assert_eq!(train.images, tr_img);
        assert_eq!(train.labels, tr_lab);
        assert_eq!(test.images, te_img);
        assert_eq!(test.labels, te_lab);
    }
}

#[test]
fn gzip_detected_by_content_not_name() {
    let dir = TempDir::new("gz-noname");
    let body = [1u8, 2, 3, 9];
    let path = dir.path("labels.raw");
    write(&path, &gzip(&idx_bytes(0x801, &[4], &body)));
    let a = data::read_idx(&path, 1).unwrap();
    assert_eq!(a.dims, vec![4]);
    assert_eq!(a.data, body);
}

#[test]
fn missing_file_is_named() {
    let dir = TempDir::new("missing");
    write_toy_set(&dir, 3, 2, true);
    std::fs::remove_file(dir.path("t10k-labels-idx1-ubyte.gz")).unwrap();
    let err = data::load_fashion_mnist(&dir.0).unwrap_err();
    assert_msg(err, &["t10k-labels-idx1-ubyte", "test labels"]);

    let err = data::read_idx(&dir.path("nope.gz"), 1).unwrap_err();
    assert_msg(err, &["nope.gz", "cannot read"]);
}

#[test]
fn bad_magic_is_named() {
    let dir = TempDir::new("magic");
    for (name, bytes) in [
        ("text.idx", b"hello world, not idx".to_vec()),
        ("int32.idx", idx_bytes(0x0c01, &[1], &[0, 0, 0, 1])),
    ] {
        let p = dir.path(name);
        write(&p, &bytes);
        assert_msg(data::read_idx(&p, 1).unwrap_err(), &[name, "bad IDX magic"]);
        // Same through gzip.
        let pgz = dir.path(&format!("{name}.gz"));
        write(&pgz, &gzip(&bytes));
        assert_msg(
            data::read_idx(&pgz, 1).unwrap_err(),
            &[name, "bad IDX magic"],
        );
    }
}

#[test]
fn wrong_dimension_count_is_named() {
    let dir = TempDir::new("dims");
    let p = dir.path("labels-as-images");
    write(&p, &idx_bytes(0x801, &[3], &[1, 2, 3]));
    assert_msg(
        data::read_idx(&p, 3).unwrap_err(),
        &["labels-as-images", "declares 1 dimensions, expected 3"],
    );
}

#[test]
fn truncated_data_is_named() {
    let dir = TempDir::new("trunc");
    let full = idx_bytes(0x803, &[4, 2, 3], &pixels(24, 5));
    // Raw: body short by 5, and header cut inside the dims.
    let p = dir.path("short.idx");
    write(&p, &full[..full.len() - 5]);
    assert_msg(
        data::read_idx(&p, 3).unwrap_err(),
        &[
            "short.idx",
            "truncated IDX data",
            "expected 24 bytes, found 19",
        ],
    );
    let p = dir.path("short-header.idx");
    write(&p, &full[..10]);
    assert_msg(
        data::read_idx(&p, 3).unwrap_err(),
        &["short-header.idx", "truncated IDX header"],
    );
    // Gzip of a short payload: the stream is intact, the data is not.
    let p = dir.path("short-payload.gz");
    write(&p, &gzip(&full[..full.len() - 5]));
    assert_msg(
        data::read_idx(&p, 3).unwrap_err(),
        &[
            "short-payload.gz",
            "truncated",
            "expected 24 bytes, found 19",
        ],
    );
}

#[test]
fn truncated_gzip_stream_is_named() {
    let dir = TempDir::new("trunc-gz");
    let full = idx_bytes(0x803, &[50, 28, 28], &pixels(50 * 784, 9));
    let gz = gzip(&full);
    // Cut in the middle of the deflate data, and just before the trailer ends.
    for (tag, cut) in [("mid", gz.len() / 2), ("trailer", gz.len() - 3)] {
        let name = format!("cut-{tag}.gz");
        let p = dir.path(&name);
        write(&p, &gz[..cut]);
        let err = data::read_idx(&p, 3).unwrap_err();
        assert_msg(err, &[&name, "truncated"]);
    }
}

#[test]
fn trailing_data_is_an_error() {
    let dir = TempDir::new("trailing");
    let mut full = idx_bytes(0x801, &[3], &[1, 2, 3]);
    full.push(7);
    let p = dir.path("long.idx");
    write(&p, &full);
    assert_msg(
        data::read_idx(&p, 1).unwrap_err(),
        &["long.idx", "trailing bytes"],
    );
    let p = dir.path("long-payload.gz");
    write(&p, &gzip(&full));
    assert_msg(
        data::read_idx(&p, 1).unwrap_err(),
        &["long-payload.gz", "trailing bytes"],
    );
    let mut after = gzip(&full[..full.len() - 1]);
    after.extend_from_slice(b"junk");
    let p = dir.path("junk-after.gz");
    write(&p, &after);
    assert_msg(
        data::read_idx(&p, 1).unwrap_err(),
        &["junk-after.gz", "trailing bytes after the gzip stream"],
    );
}

#[test]
fn oversized_dims_are_rejected() {
    let dir = TempDir::new("huge");
    let p = dir.path("overflow.idx");
    write(&p, &idx_bytes(0x803, &[u32::MAX, u32::MAX, u32::MAX], &[]));
    assert_msg(
        data::read_idx(&p, 3).unwrap_err(),
        &["overflow.idx", "overflows"],
    );
    let p = dir.path("too-large.idx");
    write(&p, &idx_bytes(0x803, &[1 << 20, 1 << 20, 1 << 10], &[]));
    assert_msg(
        data::read_idx(&p, 3).unwrap_err(),
        &["too-large.idx", "more than the limit"],
    );
}

#[test]
fn huge_header_with_tiny_body_fails_fast_without_allocating() {
    // 2^31 images of 28x28 = 1.7 TB claimed; the body is 100 bytes. The
    // reader must notice the short body rather than reserve the claim.
    let dir = TempDir::new("alloc");
    let bytes = idx_bytes(0x803, &[1 << 31, 28, 28], &[0u8; 100]);
    for gz in [false, true] {
        let name = if gz { "claim.gz" } else { "claim.idx" };
        let p = dir.path(name);
        write(&p, &if gz { gzip(&bytes) } else { bytes.clone() });
        let t = Instant::now();
        let err = data::read_idx(&p, 3).unwrap_err();
        assert!(t.elapsed().as_secs_f64() < 2.0, "took {:?}", t.elapsed());
        assert_msg(err, &[name, "truncated", "found 100"]);
    }
    // Labels too: 2^31 claimed, 3 present.
    let p = dir.path("claim-labels.gz");
    write(&p, &gzip(&idx_bytes(0x801, &[1 << 31], &[1, 2, 3])));
    assert_msg(
        data::read_idx(&p, 1).unwrap_err(),
        &[
            "claim-labels.gz",
            "truncated",
            "expected 2147483648 bytes, found 3",
        ],
    );
}

#[test]
fn count_mismatch_names_both_files() {
    let dir = TempDir::new("count");
    write_toy_set(&dir, 5, 2, false);
    write(
        &dir.path("train-labels-idx1-ubyte"),
        &idx_bytes(0x801, &[4], &[0, 1, 2, 3]),
    );
    assert_msg(
        data::load_fashion_mnist(&dir.0).unwrap_err(),
        &[
            "train-images-idx3-ubyte",
            "5 images",
            "train-labels-idx1-ubyte",
            "4 labels",
        ],
    );
}

#[test]
fn label_out_of_range_names_file_index_value() {
    let dir = TempDir::new("label");
    write_toy_set(&dir, 2, 4, true);
    write(
        &dir.path("t10k-labels-idx1-ubyte.gz"),
        &gzip(&idx_bytes(0x801, &[4], &[0, 9, 10, 3])),
    );
    assert_msg(
        data::load_fashion_mnist(&dir.0).unwrap_err(),
        &["t10k-labels-idx1-ubyte.gz", "index 2", "is 10"],
    );
}

fn toy(n: usize) -> Dataset {
    Dataset {
        images: pixels(n * 6, 3),
        labels: (0..n).map(|i| (i % 10) as u8).collect(),
        n,
        rows: 2,
        cols: 3,
    }
}

#[test]
fn shuffle_is_deterministic_and_a_permutation_per_epoch() {
    let d = toy(103);
    let order = |seed, epoch| -> Vec<u32> {
        Batches::new(&d, 10, Some(seed), epoch)
            .unwrap()
            .flat_map(|b| b.indices)
            .collect()
    };
    let mut orders = Vec::new();
    for epoch in 0..4 {
        let o = order(5, epoch);
        assert_eq!(
            o,
            order(5, epoch),
            "same (seed, epoch) must give the same order"
        );
        let mut s = o.clone();
        s.sort_unstable();
        assert_eq!(
            s,
            (0..103).collect::<Vec<u32>>(),
            "epoch {epoch} is not a permutation"
        );
        assert_ne!(o, (0..103).collect::<Vec<u32>>());
        orders.push(o);
    }
    for i in 0..orders.len() {
        for j in i + 1..orders.len() {
            assert_ne!(orders[i], orders[j], "epochs {i} and {j} share an order");
        }
    }
    assert_ne!(order(6, 0), orders[0], "seed must matter");
    // Without a seed the order is sequential.
    let seq: Vec<u32> = Batches::new(&d, 10, None, 3)
        .unwrap()
        .flat_map(|b| b.indices)
        .collect();
    assert_eq!(seq, (0..103).collect::<Vec<u32>>());
}

#[test]
fn batches_content_sizes_and_drop_last() {
    let d = toy(23);
    let batches: Vec<Batch> = Batches::new(&d, 5, Some(1), 0).unwrap().collect();
    assert_eq!(batches.len(), 5);
    assert_eq!(
        batches.iter().map(|b| b.size).collect::<Vec<_>>(),
        vec![5, 5, 5, 5, 3]
    );
    for b in &batches {
        assert_eq!(b.images_f32.len(), b.size * 6);
        assert_eq!(b.labels.len(), b.size);
        for (k, &i) in b.indices.iter().enumerate() {
            let i = i as usize;
            assert_eq!(b.labels[k], d.labels[i] as u32);
            for q in 0..6 {
                let want = d.images[i * 6 + q] as f32 / 127.5 - 1.0;
                assert_eq!(b.images_f32[k * 6 + q], want);
            }
        }
    }
    let it = Batches::new(&d, 5, Some(1), 0).unwrap().drop_last(true);
    assert_eq!(it.len(), 4);
    let dropped: Vec<Batch> = it.collect();
    assert_eq!(dropped.len(), 4);
    assert_eq!(dropped[..], batches[..4]);

    // Exact multiple: no partial batch either way.
    assert_eq!(Batches::new(&toy(20), 5, None, 0).unwrap().count(), 4);
    assert!(matches!(
        Batches::new(&d, 0, None, 0),
        Err(DataError::ZeroBatchSize)
    ));
}

#[test]
fn seek_resumes_mid_epoch() {
    let d = toy(31);
    let all: Vec<Batch> = Batches::new(&d, 4, Some(77), 2).unwrap().collect();
    let mut it = Batches::new(&d, 4, Some(77), 2).unwrap();
    it.seek(5);
    assert_eq!(it.position(), 5);
    let rest: Vec<Batch> = it.collect();
    assert_eq!(rest[..], all[5..]);
    // Reused buffers give the same batches.
    let mut it = Batches::new(&d, 4, Some(77), 2).unwrap();
    let mut b = Batch::default();
    let mut k = 0;
    while it.next_into(&mut b) {
        assert_eq!(b, all[k]);
        k += 1;
    }
    assert_eq!(k, all.len());
}

#[test]
fn scaling_maps_0_to_minus_1_and_255_to_plus_1() {
    let d = Dataset {
        images: vec![0, 255, 128, 1],
        labels: vec![3],
        n: 1,
        rows: 2,
        cols: 2,
    };
    let b = Batches::new(&d, 8, None, 0).unwrap().next().unwrap();
    assert_eq!(b.images_f32[0], -1.0);
    assert_eq!(b.images_f32[1], 1.0);
    assert_eq!(b.images_f32[2], 128.0 / 127.5 - 1.0);
    assert!((b.images_f32[3] - (1.0 / 127.5 - 1.0)).abs() < 1e-7);
    assert_eq!(b.labels, vec![3]);
    assert_eq!(b.size, 1);
}

#[test]
fn validation_split_and_limit() {
    let d = toy(50);
    let (tr, va) = data::split_validation(d.clone(), 8).unwrap();
    assert_eq!((tr.n, va.n), (42, 8));
    assert_eq!(tr, d.slice(0..42).unwrap());
    assert_eq!(va, d.slice(42..50).unwrap());
    let err = data::split_validation(d.clone(), 51).unwrap_err();
    assert_msg(err, &["51", "50"]);
    assert_eq!(data::default_val_count(60000), 5000);
    assert_eq!(data::default_val_count(1234), 123);
    let l = d.clone().limit(10);
    assert_eq!(l.n, 10);
    assert_eq!(l, d.slice(0..10).unwrap());
}

#[test]
fn inconsistent_dataset_is_rejected_by_batches() {
    let mut d = toy(4);
    d.labels.pop();
    assert_msg(
        Batches::new(&d, 2, None, 0).unwrap_err(),
        &["inconsistent", "3 labels"],
    );
}

#[test]
fn real_fashion_mnist_if_installed() {
    let dir = Path::new(DEFAULT_FASHION_MNIST_DIR);
    if !dir.exists() {
        eprintln!("{} not present; skipping", dir.display());
        return;
    }
    let (train, test) = data::load_fashion_mnist(dir).unwrap();
    assert_eq!((train.n, train.rows, train.cols), (60000, 28, 28));
    assert_eq!((test.n, test.rows, test.cols), (10000, 28, 28));
    assert_eq!(train.images.len(), 60000 * 784);
    assert!(train.labels.iter().chain(&test.labels).all(|&l| l < 10));
    // Fashion-MNIST is balanced: 6000 / 1000 per class.
    for c in 0..10u8 {
        assert_eq!(train.labels.iter().filter(|&&l| l == c).count(), 6000);
        assert_eq!(test.labels.iter().filter(|&&l| l == c).count(), 1000);
    }
}
