//! Data sets: IDX (MNIST-format) files, Fashion-MNIST loading, train/validation
//! splits and seeded mini-batches.
//!
//! Images are kept as bytes (`[n, rows*cols]`) and scaled to f32 only per
//! batch, `x = p / 127.5 - 1`, so the whole training set stays 47 MB.

pub mod batch;
pub mod idx;
pub mod rng;

use std::ops::Range;
use std::path::{Path, PathBuf};

pub use batch::{Batch, Batches, scale_pixel};
pub use idx::{IdxArray, read_idx, read_idx_bytes};
pub use rng::{SplitMix64, shuffled_order};

/// Where Debian's `dataset-fashion-mnist` package installs the data set
/// (the four `*-ubyte.gz` files).
pub const DEFAULT_FASHION_MNIST_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// Number of classes in (Fashion-)MNIST; labels must be below it.
pub const NUM_CLASSES: u8 = 10;

/// Image size `(rows, cols)` of (Fashion-)MNIST, the input every bitprop
/// model takes.
pub const IMAGE_SIZE: (usize, usize) = (28, 28);

/// Errors from reading and preparing data. Messages name the file and the
/// field or shape at fault.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be opened or read. (The I/O error is part of the
    /// message and deliberately not a `source()`, so that printing the error
    /// chain does not repeat it.)
    #[error("{}: cannot read: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// The data directory does not exist or is not a directory.
    #[error("{}: data directory does not exist or is not a directory", dir.display())]
    NoDirectory { dir: PathBuf },
    /// None of the accepted names of a data file exists in the directory.
    #[error("{}: no {} (tried {})", dir.display(), what, tried.join(", "))]
    MissingFile {
        dir: PathBuf,
        what: &'static str,
        tried: Vec<String>,
    },
    /// The gzip stream is cut short, corrupt, or fails its CRC check.
    #[error("{}: gzip stream is truncated or corrupt: {error}", path.display())]
    Gzip {
        path: PathBuf,
        error: std::io::Error,
    },
    /// The magic number is not that of a u8 IDX file.
    #[error(
        "{}: bad IDX magic number 0x{found:08x} (expected 0x{expected:08x}: two zero bytes, type byte 0x08 = u8, then the dimension count)",
        path.display()
    )]
    BadMagic {
        path: PathBuf,
        found: u32,
        expected: u32,
    },
    /// The IDX header has a different number of dimensions than required.
    #[error("{}: IDX header declares {found} dimensions, expected {expected}", path.display())]
    WrongDims {
        path: PathBuf,
        found: u8,
        expected: u8,
    },
    /// The product of the IDX dimensions overflows u64.
    #[error("{}: IDX dimensions {dims:?}: their product overflows", path.display())]
    DimsOverflow { path: PathBuf, dims: Vec<u64> },
    /// The IDX dimensions describe more bytes than the sanity bound.
    #[error(
        "{}: IDX dimensions {dims:?} describe {bytes} bytes, more than the limit of {limit}",
        path.display()
    )]
    DimsTooLarge {
        path: PathBuf,
        dims: Vec<u64>,
        bytes: u64,
        limit: u64,
    },
    /// Fewer bytes than the header (or the format) requires.
    #[error("{}: truncated {what}: expected {expected} bytes, found {found}", path.display())]
    Truncated {
        path: PathBuf,
        what: &'static str,
        expected: u64,
        found: u64,
    },
    /// Bytes beyond those the IDX header describes.
    #[error(
        "{}: trailing bytes {location} (the IDX header describes {expected} data bytes)",
        path.display()
    )]
    TrailingData {
        path: PathBuf,
        expected: u64,
        location: &'static str,
    },
    /// The image and label files disagree on the number of samples.
    #[error(
        "{} holds {n_images} images but {} holds {n_labels} labels",
        images.display(),
        labels.display()
    )]
    CountMismatch {
        images: PathBuf,
        labels: PathBuf,
        n_images: usize,
        n_labels: usize,
    },
    /// A label is not a valid class index.
    #[error(
        "{}: label at index {index} is {value}, outside 0..{classes}",
        path.display()
    )]
    LabelOutOfRange {
        path: PathBuf,
        index: usize,
        value: u8,
        classes: u8,
    },
    /// The images are not of the size the data set (and every model) has.
    #[error(
        "{}: images are {}x{}, expected {}x{} ({})",
        path.display(), found.0, found.1, expected.0, expected.1, data_set
    )]
    ImageSize {
        path: PathBuf,
        found: (usize, usize),
        expected: (usize, usize),
        data_set: &'static str,
    },
    /// Training and test images have different sizes.
    #[error(
        "{} has {}x{} images but {} has {}x{} images",
        train.display(), train_shape.0, train_shape.1,
        test.display(), test_shape.0, test_shape.1
    )]
    ImageShapeMismatch {
        train: PathBuf,
        test: PathBuf,
        train_shape: (usize, usize),
        test_shape: (usize, usize),
    },
    /// The validation split asks for more images than the training set has.
    #[error("validation count {val} exceeds the {n} training images")]
    ValidationTooLarge { val: usize, n: usize },
    /// A sample range outside the data set.
    #[error("sample range {start}..{end} is outside a data set of {n} samples")]
    RangeOutOfBounds { start: usize, end: usize, n: usize },
    /// A batch size of zero.
    #[error("batch size must be at least 1")]
    ZeroBatchSize,
    /// More samples than a u32 index can address.
    #[error("data set of {n} samples is too large to index with u32")]
    TooManySamples { n: usize },
    /// The fields of a `Dataset` disagree with each other.
    #[error(
        "inconsistent data set: n = {n}, {rows}x{cols} pixels, but {images} image bytes and {labels} labels"
    )]
    Inconsistent {
        n: usize,
        rows: usize,
        cols: usize,
        images: usize,
        labels: usize,
    },
}

/// Images and labels held in memory as bytes.
///
/// Invariant: `images.len() == n * rows * cols`, `labels.len() == n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dataset {
    /// `[n, rows*cols]` row-major pixel bytes (0 = background for Fashion-MNIST).
    pub images: Vec<u8>,
    /// `[n]` class indices.
    pub labels: Vec<u8>,
    /// Number of samples.
    pub n: usize,
    /// Image height.
    pub rows: usize,
    /// Image width.
    pub cols: usize,
}

impl Dataset {
    /// Pixels per image: `rows * cols`.
    pub fn pixels(&self) -> usize {
        self.rows * self.cols
    }

    /// Checks the invariant `images.len() == n*rows*cols`, `labels.len() == n`.
    pub fn check_consistent(&self) -> Result<(), DataError> {
        let want = self
            .n
            .checked_mul(self.rows)
            .and_then(|v| v.checked_mul(self.cols));
        if want != Some(self.images.len()) || self.labels.len() != self.n {
            return Err(DataError::Inconsistent {
                n: self.n,
                rows: self.rows,
                cols: self.cols,
                images: self.images.len(),
                labels: self.labels.len(),
            });
        }
        Ok(())
    }

    /// A copy of samples `range` (`start..end`, `end <= n`).
    pub fn slice(&self, range: Range<usize>) -> Result<Dataset, DataError> {
        if range.start > range.end || range.end > self.n {
            return Err(DataError::RangeOutOfBounds {
                start: range.start,
                end: range.end,
                n: self.n,
            });
        }
        let p = self.pixels();
        Ok(Dataset {
            images: self.images[range.start * p..range.end * p].to_vec(),
            labels: self.labels[range.clone()].to_vec(),
            n: range.len(),
            rows: self.rows,
            cols: self.cols,
        })
    }

    /// The first `min(n, self.n)` samples (for `--limit-train`).
    pub fn limit(mut self, n: usize) -> Dataset {
        let n = n.min(self.n);
        self.images.truncate(n * self.pixels());
        self.labels.truncate(n);
        self.n = n;
        self
    }
}

/// Splits `train` into (first `n - val`, last `val`) samples: the last `val`
/// images become the validation set, so the split is deterministic and does
/// not depend on any shuffle.
pub fn split_validation(mut train: Dataset, val: usize) -> Result<(Dataset, Dataset), DataError> {
    if val > train.n {
        return Err(DataError::ValidationTooLarge { val, n: train.n });
    }
    let keep = train.n - val;
    let p = train.pixels();
    let validation = Dataset {
        images: train.images.split_off(keep * p),
        labels: train.labels.split_off(keep),
        n: val,
        rows: train.rows,
        cols: train.cols,
    };
    train.n = keep;
    Ok((train, validation))
}

/// Default validation size: 5000 when `n_train >= 50000`, else `n_train / 10`.
pub fn default_val_count(n_train: usize) -> usize {
    if n_train >= 50_000 {
        5000
    } else {
        n_train / 10
    }
}

/// Finds `base.gz` or `base` in `dir` (uncompressed first, as a user who
/// unpacked the files presumably wants those read).
fn find_file(dir: &Path, base: &str, what: &'static str) -> Result<PathBuf, DataError> {
    if !dir.is_dir() {
        return Err(DataError::NoDirectory {
            dir: dir.to_path_buf(),
        });
    }
    let gz = format!("{base}.gz");
    for name in [base, gz.as_str()] {
        let p = dir.join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(DataError::MissingFile {
        dir: dir.to_path_buf(),
        what,
        tried: vec![base.to_string(), gz],
    })
}

/// Reads an image file and its label file into a [`Dataset`], checking that
/// the counts agree and that every label is below [`NUM_CLASSES`].
pub fn load_pair(images_path: &Path, labels_path: &Path) -> Result<Dataset, DataError> {
    let images = read_idx(images_path, 3)?;
    let labels = read_idx(labels_path, 1)?;
    let (n, rows, cols) = (images.dims[0], images.dims[1], images.dims[2]);
    if labels.dims[0] != n {
        return Err(DataError::CountMismatch {
            images: images_path.to_path_buf(),
            labels: labels_path.to_path_buf(),
            n_images: n,
            n_labels: labels.dims[0],
        });
    }
    if let Some((index, &value)) = labels
        .data
        .iter()
        .enumerate()
        .find(|&(_, &l)| l >= NUM_CLASSES)
    {
        return Err(DataError::LabelOutOfRange {
            path: labels_path.to_path_buf(),
            index,
            value,
            classes: NUM_CLASSES,
        });
    }
    Ok(Dataset {
        images: images.data,
        labels: labels.data,
        n,
        rows,
        cols,
    })
}

/// Loads Fashion-MNIST (or MNIST, same file names) from `dir`: returns
/// (train, test) from `train-{images-idx3,labels-idx1}-ubyte` and
/// `t10k-{images-idx3,labels-idx1}-ubyte`, each raw or with `.gz`.
/// Images must be [`IMAGE_SIZE`] (28x28), the size the models take; other
/// IDX data sets can be read with [`load_pair`].
pub fn load_fashion_mnist(dir: &Path) -> Result<(Dataset, Dataset), DataError> {
    let train_images = find_file(dir, "train-images-idx3-ubyte", "training images")?;
    let train_labels = find_file(dir, "train-labels-idx1-ubyte", "training labels")?;
    let test_images = find_file(dir, "t10k-images-idx3-ubyte", "test images")?;
    let test_labels = find_file(dir, "t10k-labels-idx1-ubyte", "test labels")?;
    let train = load_pair(&train_images, &train_labels)?;
    let test = load_pair(&test_images, &test_labels)?;
    if (train.rows, train.cols) != (test.rows, test.cols) {
        return Err(DataError::ImageShapeMismatch {
            train: train_images,
            test: test_images,
            train_shape: (train.rows, train.cols),
            test_shape: (test.rows, test.cols),
        });
    }
    if (train.rows, train.cols) != IMAGE_SIZE {
        return Err(DataError::ImageSize {
            path: train_images,
            found: (train.rows, train.cols),
            expected: IMAGE_SIZE,
            data_set: "Fashion-MNIST",
        });
    }
    Ok((train, test))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy(n: usize) -> Dataset {
        Dataset {
            images: (0..n * 4).map(|v| v as u8).collect(),
            labels: (0..n).map(|v| (v % 10) as u8).collect(),
            n,
            rows: 2,
            cols: 2,
        }
    }

    #[test]
    fn split_takes_the_last_samples() {
        let (tr, va) = split_validation(toy(10), 3).unwrap();
        assert_eq!((tr.n, va.n), (7, 3));
        assert_eq!(va.labels, vec![7, 8, 9]);
        assert_eq!(va.images[..4], [28, 29, 30, 31]);
        assert_eq!(tr.images.len(), 28);
        tr.check_consistent().unwrap();
        va.check_consistent().unwrap();
        assert!(split_validation(toy(3), 4).is_err());
    }

    #[test]
    fn default_val_rule() {
        assert_eq!(default_val_count(60000), 5000);
        assert_eq!(default_val_count(50000), 5000);
        assert_eq!(default_val_count(49999), 4999);
        assert_eq!(default_val_count(1000), 100);
    }

    #[test]
    fn slice_and_limit() {
        let d = toy(5);
        let s = d.slice(1..3).unwrap();
        assert_eq!(s.labels, vec![1, 2]);
        assert_eq!(s.images, (4..12).collect::<Vec<u8>>());
        let err = d.slice(2..6).unwrap_err().to_string();
        assert!(err.contains("2..6") && err.contains('5'), "{err}");
        let l = d.clone().limit(2);
        assert_eq!(l, d.slice(0..2).unwrap());
        assert_eq!(d.clone().limit(99), d);
    }
}
