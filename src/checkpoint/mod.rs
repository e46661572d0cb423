//! Checkpoints: named tensors in a safetensors file, written atomically.
//!
//! The file is plain safetensors (8-byte little-endian header length, JSON
//! header with `dtype`/`shape`/`data_offsets` per tensor and an optional
//! `__metadata__` string map, then little-endian row-major data), so
//! PyTorch's `safetensors.torch.load_file` reads it as is: F32 tensors come
//! back as `torch.float32`, integer state as `torch.int64`.
//!
//! Model parameters are F32. Integer training state (step counters, RNG
//! states) is written as I64, the integer type every PyTorch version reads;
//! a u64 (such as a [`SplitMix64`](crate::data::SplitMix64) state) is stored
//! by its bit pattern (`v as i64`) and read back with `v as u64`.
//! Loading accepts F32, I64 and U64 tensors and rejects other dtypes, naming
//! the tensor and its dtype.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensorError, SafeTensors, View};

/// Errors from saving and loading checkpoints. Messages name the file and,
/// where one is at fault, the tensor.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// A file-system operation failed. (Here and below, the underlying
    /// error is part of the message and deliberately not a `source()`, so
    /// that printing the error chain does not repeat it.)
    #[error("{}: {op}: {error}", path.display())]
    Io {
        path: PathBuf,
        op: &'static str,
        error: io::Error,
    },
    /// The file is not a well-formed safetensors file (bad or truncated
    /// header, offsets that do not cover the data, ...).
    #[error("{}: not a valid safetensors file: {error}", path.display())]
    Format {
        path: PathBuf,
        error: SafeTensorError,
    },
    /// Serializing the header failed.
    #[error("{}: cannot serialize checkpoint: {error}", path.display())]
    Serialize {
        path: PathBuf,
        error: SafeTensorError,
    },
    /// A tensor to save has a different number of values than its shape says.
    #[error(
        "{}: tensor `{name}` has shape {shape:?} ({expected} elements) but {found} values",
        path.display()
    )]
    DataLength {
        path: PathBuf,
        name: String,
        shape: Vec<usize>,
        expected: usize,
        found: usize,
    },
    /// Two tensors to save share a name.
    #[error("{}: tensor name `{name}` is used twice", path.display())]
    DuplicateName { path: PathBuf, name: String },
    /// A stored tensor has a dtype this crate does not read.
    #[error(
        "{}: tensor `{name}` has dtype {dtype}, which is not supported (F32, I64, U64 are)",
        path.display()
    )]
    UnsupportedDtype {
        path: PathBuf,
        name: String,
        dtype: String,
    },
    /// An expected tensor is not in the file.
    #[error("{}: tensor `{name}` is missing", path.display())]
    Missing { path: PathBuf, name: String },
    /// The file holds tensors that were not expected.
    #[error("{}: unexpected tensor(s) {}", path.display(), quote_list(names))]
    Unexpected { path: PathBuf, names: Vec<String> },
    /// A tensor has a different shape than expected.
    #[error(
        "{}: tensor `{name}` has shape {found:?}, expected {expected:?}",
        path.display()
    )]
    Shape {
        path: PathBuf,
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    /// A tensor has a different dtype than expected.
    #[error(
        "{}: tensor `{name}` has dtype {found}, expected {expected}",
        path.display()
    )]
    Dtype {
        path: PathBuf,
        name: String,
        expected: &'static str,
        found: &'static str,
    },
}

fn quote_list(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The values of one stored tensor.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    /// 32-bit floats (model parameters).
    F32(Vec<f32>),
    /// 64-bit signed integers (training state).
    I64(Vec<i64>),
    /// 64-bit unsigned integers (read only from files written elsewhere;
    /// [`save_tensors`] writes them as U64, which PyTorch reads only from 2.3).
    U64(Vec<u64>),
}

impl TensorData {
    /// The safetensors dtype name: "F32", "I64" or "U64".
    pub fn dtype_name(&self) -> &'static str {
        match self {
            TensorData::F32(_) => "F32",
            TensorData::I64(_) => "I64",
            TensorData::U64(_) => "U64",
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            TensorData::F32(v) => v.len(),
            TensorData::I64(v) => v.len(),
            TensorData::U64(v) => v.len(),
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn dtype(&self) -> Dtype {
        match self {
            TensorData::F32(_) => Dtype::F32,
            TensorData::I64(_) => Dtype::I64,
            TensorData::U64(_) => Dtype::U64,
        }
    }

    /// Little-endian bytes, as safetensors stores them.
    fn le_bytes(&self) -> Vec<u8> {
        match self {
            TensorData::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            TensorData::I64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            TensorData::U64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        }
    }
}

/// A loaded checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    /// The file it was read from (named in errors).
    pub path: PathBuf,
    /// Tensors by name: (shape, values).
    pub tensors: BTreeMap<String, (Vec<usize>, TensorData)>,
    /// The `__metadata__` string map (empty when absent).
    pub metadata: BTreeMap<String, String>,
}

/// A serialized tensor for the safetensors writer.
struct Prepared {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl View for &Prepared {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

/// Saves F32 tensors `(name, shape, values)` and string `metadata` to `path`
/// atomically (see [`save_tensors`]).
pub fn save(
    path: &Path,
    tensors: &[(String, Vec<usize>, Vec<f32>)],
    metadata: BTreeMap<String, String>,
) -> Result<(), CheckpointError> {
    let prepared = tensors
        .iter()
        .map(|(name, shape, values)| {
            prepare(path, name, shape, values.len(), Dtype::F32, || {
                values.iter().flat_map(|x| x.to_le_bytes()).collect()
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    write_prepared(path, prepared, metadata)
}

/// Saves F32 tensors plus I64 integer tensors (training state) to `path`
/// atomically (see [`save_tensors`]).
pub fn save_with_ints(
    path: &Path,
    floats: &[(String, Vec<usize>, Vec<f32>)],
    ints: &[(String, Vec<usize>, Vec<i64>)],
    metadata: BTreeMap<String, String>,
) -> Result<(), CheckpointError> {
    let mut prepared = Vec::with_capacity(floats.len() + ints.len());
    for (name, shape, values) in floats {
        prepared.push(prepare(
            path,
            name,
            shape,
            values.len(),
            Dtype::F32,
            || values.iter().flat_map(|x| x.to_le_bytes()).collect(),
        )?);
    }
    for (name, shape, values) in ints {
        prepared.push(prepare(
            path,
            name,
            shape,
            values.len(),
            Dtype::I64,
            || values.iter().flat_map(|x| x.to_le_bytes()).collect(),
        )?);
    }
    write_prepared(path, prepared, metadata)
}

/// Saves tensors of any supported dtype to `path`.
///
/// Atomic: the bytes go to `<path>.tmp` in the same directory, which is
/// fsynced, renamed over `path`, and the directory is fsynced, so a crash
/// leaves either the old file or the complete new one. (Two processes saving
/// to the same path at once would share the temporary name; don't.)
pub fn save_tensors(
    path: &Path,
    tensors: &[(String, Vec<usize>, TensorData)],
    metadata: BTreeMap<String, String>,
) -> Result<(), CheckpointError> {
    let prepared = tensors
        .iter()
        .map(|(name, shape, data)| {
            prepare(path, name, shape, data.len(), data.dtype(), || {
                data.le_bytes()
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    write_prepared(path, prepared, metadata)
}

fn prepare(
    path: &Path,
    name: &str,
    shape: &[usize],
    len: usize,
    dtype: Dtype,
    bytes: impl FnOnce() -> Vec<u8>,
) -> Result<(String, Prepared), CheckpointError> {
    let expected = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    if expected != Some(len) {
        return Err(CheckpointError::DataLength {
            path: path.to_path_buf(),
            name: name.to_string(),
            shape: shape.to_vec(),
            expected: expected.unwrap_or(usize::MAX),
            found: len,
        });
    }
    Ok((
        name.to_string(),
        Prepared {
            dtype,
            shape: shape.to_vec(),
            bytes: bytes(),
        },
    ))
}

fn write_prepared(
    path: &Path,
    prepared: Vec<(String, Prepared)>,
    metadata: BTreeMap<String, String>,
) -> Result<(), CheckpointError> {
    let mut seen = BTreeSet::new();
    for (name, _) in &prepared {
        if !seen.insert(name.as_str()) {
            return Err(CheckpointError::DuplicateName {
                path: path.to_path_buf(),
                name: name.clone(),
            });
        }
    }
    let info = if metadata.is_empty() {
        None
    } else {
        Some(metadata.into_iter().collect::<HashMap<_, _>>())
    };
    let bytes = safetensors::serialize(prepared.iter().map(|(n, p)| (n.as_str(), p)), info)
        .map_err(|error| CheckpointError::Serialize {
            path: path.to_path_buf(),
            error,
        })?;
    write_atomically(path, &bytes)
}

/// `<path>.tmp`: the temporary sibling `save` writes before renaming.
pub fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    let io_err = |p: &Path, op: &'static str| {
        let p = p.to_path_buf();
        move |error| CheckpointError::Io { path: p, op, error }
    };
    let tmp = temp_path(path);
    let result = (|| {
        let mut f = File::create(&tmp).map_err(io_err(&tmp, "cannot create"))?;
        f.write_all(bytes).map_err(io_err(&tmp, "cannot write"))?;
        f.sync_all().map_err(io_err(&tmp, "cannot fsync"))?;
        drop(f);
        std::fs::rename(&tmp, path).map_err(io_err(path, "cannot rename the temporary file over"))
    })();
    if result.is_err() {
        // Best effort: don't leave a half-written temporary behind.
        let _ = std::fs::remove_file(&tmp);
        return result;
    }
    sync_dir(path).map_err(io_err(path, "cannot fsync the directory of"))
}

/// Makes the rename durable by syncing the directory entry (POSIX); other
/// platforms can't open a directory as a file, and rename there is already
/// as durable as it gets.
fn sync_dir(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        File::open(dir)?.sync_all()?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Loads a checkpoint. The file is read whole (its real length bounds the
/// allocation) and validated by safetensors: the header must be well-formed
/// and its offsets must cover the data exactly, so a truncated file is an
/// error naming the file.
pub fn load(path: &Path) -> Result<Checkpoint, CheckpointError> {
    let bytes = std::fs::read(path).map_err(|error| CheckpointError::Io {
        path: path.to_path_buf(),
        op: "cannot read",
        error,
    })?;
    load_bytes(path, &bytes)
}

/// Parses the safetensors `bytes` of a checkpoint; `path` is what errors
/// name and what [`Checkpoint::path`] holds. The parser behind [`load`], and
/// the entry point the fuzz target drives. Every allocation is bounded by
/// `bytes.len()`: safetensors checks the header length and the offsets
/// against the buffer before anything is copied.
pub fn load_bytes(path: &Path, bytes: &[u8]) -> Result<Checkpoint, CheckpointError> {
    let format_err = |error| CheckpointError::Format {
        path: path.to_path_buf(),
        error,
    };
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(format_err)?;
    let st = SafeTensors::deserialize(bytes).map_err(format_err)?;
    let mut tensors = BTreeMap::new();
    for (name, view) in st.iter() {
        let raw = view.data();
        let data = match view.dtype() {
            Dtype::F32 => TensorData::F32(
                raw.chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            ),
            Dtype::I64 => TensorData::I64(
                raw.chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                    .collect(),
            ),
            Dtype::U64 => TensorData::U64(
                raw.chunks_exact(8)
                    .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                    .collect(),
            ),
            other => {
                return Err(CheckpointError::UnsupportedDtype {
                    path: path.to_path_buf(),
                    name: name.to_string(),
                    dtype: format!("{other:?}"),
                });
            }
        };
        tensors.insert(name.to_string(), (view.shape().to_vec(), data));
    }
    let metadata = header
        .metadata()
        .as_ref()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    Ok(Checkpoint {
        path: path.to_path_buf(),
        tensors,
        metadata,
    })
}

impl Checkpoint {
    /// Removes and returns exactly the tensors `expected` (name, shape), in
    /// that order, as F32 values; the checkpoint must hold nothing else
    /// (take integer state out first with [`take_i64`](Self::take_i64)).
    ///
    /// Errors, naming the tensor: a missing tensor, a wrong dtype (only F32
    /// is accepted), a wrong shape (expected vs found), then any tensor left
    /// over. On error nothing is removed.
    pub fn take_strict(
        &mut self,
        expected: &[(String, Vec<usize>)],
    ) -> Result<Vec<Vec<f32>>, CheckpointError> {
        for (name, shape) in expected {
            self.check(name, shape, "F32")?;
        }
        let wanted: BTreeSet<&str> = expected.iter().map(|(n, _)| n.as_str()).collect();
        let extra: Vec<String> = self
            .tensors
            .keys()
            .filter(|k| !wanted.contains(k.as_str()))
            .cloned()
            .collect();
        if !extra.is_empty() {
            return Err(CheckpointError::Unexpected {
                path: self.path.clone(),
                names: extra,
            });
        }
        let mut out = Vec::with_capacity(expected.len());
        for (name, _) in expected {
            match self.tensors.remove(name) {
                Some((_, TensorData::F32(v))) => out.push(v),
                // `check` established presence and dtype; a duplicate name in
                // `expected` lands here on its second occurrence.
                _ => {
                    return Err(CheckpointError::Missing {
                        path: self.path.clone(),
                        name: name.clone(),
                    });
                }
            }
        }
        Ok(out)
    }

    /// Removes and returns the I64 tensor `name`, which must have `shape`.
    pub fn take_i64(&mut self, name: &str, shape: &[usize]) -> Result<Vec<i64>, CheckpointError> {
        self.check(name, shape, "I64")?;
        match self.tensors.remove(name) {
            Some((_, TensorData::I64(v))) => Ok(v),
            _ => Err(CheckpointError::Missing {
                path: self.path.clone(),
                name: name.to_string(),
            }),
        }
    }

    /// Removes and returns the F32 tensor `name`, which must have `shape`
    /// (one tensor; [`take_strict`](Self::take_strict) takes a whole set).
    pub fn take_f32(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>, CheckpointError> {
        self.check(name, shape, "F32")?;
        match self.tensors.remove(name) {
            Some((_, TensorData::F32(v))) => Ok(v),
            _ => Err(CheckpointError::Missing {
                path: self.path.clone(),
                name: name.to_string(),
            }),
        }
    }

    /// Whether a tensor named `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    fn check(
        &self,
        name: &str,
        shape: &[usize],
        dtype: &'static str,
    ) -> Result<(), CheckpointError> {
        let Some((found_shape, data)) = self.tensors.get(name) else {
            return Err(CheckpointError::Missing {
                path: self.path.clone(),
                name: name.to_string(),
            });
        };
        if data.dtype_name() != dtype {
            return Err(CheckpointError::Dtype {
                path: self.path.clone(),
                name: name.to_string(),
                expected: dtype,
                found: data.dtype_name(),
            });
        }
        if found_shape.as_slice() != shape {
            return Err(CheckpointError::Shape {
                path: self.path.clone(),
                name: name.to_string(),
                expected: shape.to_vec(),
                found: found_shape.clone(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_path_appends_suffix() {
        assert_eq!(
            temp_path(Path::new("/a/b/model.safetensors")),
            PathBuf::from("/a/b/model.safetensors.tmp")
        );
        assert_eq!(temp_path(Path::new("m")), PathBuf::from("m.tmp"));
    }

    #[test]
    fn data_length_mismatch_is_rejected_before_writing() {
        let p = std::env::temp_dir().join(format!("bitprop-ckpt-unit-{}.st", std::process::id()));
        let err = save(
            &p,
            &[("w".into(), vec![2, 3], vec![0.0; 5])],
            BTreeMap::new(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("`w`") && err.contains("[2, 3]") && err.contains('5'),
            "{err}"
        );
        assert!(!p.exists() && !temp_path(&p).exists());
    }
}
