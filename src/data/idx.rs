//! Reader for the IDX format of MNIST-style data sets, raw or gzip-compressed.
//!
//! Layout (all integers big-endian):
//!
//! ```text
//! magic: u32 = 0x0000_08_DD   (0x08 = unsigned byte elements, DD = number of dimensions)
//! dims:  DD x u32
//! data:  prod(dims) bytes, row-major
//! ```
//!
//! Images are `0x00000803` (`[n, rows, cols]`), labels `0x00000801` (`[n]`).
//!
//! Compression is detected from the first two bytes (the gzip magic `1f 8b`),
//! not from the file name.
//!
//! Memory: nothing is allocated from what the header merely claims. A raw
//! file's length is checked against the header before the body is read; a
//! gzip body is read in chunks into a `Vec` that grows only as decompressed
//! bytes actually arrive, so a header claiming 2^31 images over a tiny body
//! fails with a "truncated" error after reading the tiny body.
//!
//! Trailing data is an error ([`DataError::TrailingData`]): bytes after the
//! `prod(dims)` the header describes, in the raw file, in the decompressed
//! stream, or after the (single) gzip member. The files we read are fixed
//! data sets, so extra bytes mean a wrong or damaged file. For gzip input the
//! reader also drives the decoder to its end so that the CRC-32 and length in
//! the gzip trailer are verified.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use super::DataError;

/// The IDX element type byte for unsigned 8-bit elements (the only type MNIST uses).
pub const IDX_TYPE_U8: u8 = 0x08;

/// Magic number of a u8 IDX file with three dimensions (`[n, rows, cols]` images).
pub const IDX_MAGIC_IMAGES: u32 = 0x0000_0803;

/// Magic number of a u8 IDX file with one dimension (`[n]` labels).
pub const IDX_MAGIC_LABELS: u32 = 0x0000_0801;

/// Largest body (in bytes, `prod(dims)`) a header may describe. Far above any
/// real data set (Fashion-MNIST's training images are 47 MB); it only rejects
/// nonsense headers up front. The allocation guard is the incremental read,
/// not this bound.
pub const MAX_IDX_BYTES: u64 = 1 << 44;

/// The gzip magic bytes (RFC 1952, ID1 ID2).
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Bytes read per step while filling the body, so the `Vec` grows with the
/// data that actually arrives.
const CHUNK: usize = 1 << 16;

/// An IDX array of u8 elements: `data.len() == dims.iter().product()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    /// The dimensions from the header, outermost first.
    pub dims: Vec<usize>,
    /// The elements, row-major.
    pub data: Vec<u8>,
}

/// Reads a u8 IDX file with exactly `ndim` dimensions (magic `0x0000_08_{ndim}`),
/// raw or gzip-compressed.
///
/// Errors name the file: missing/unreadable ([`DataError::Io`]), bad magic,
/// wrong dimension count, dimensions whose product overflows or exceeds
/// [`MAX_IDX_BYTES`], truncated header or body, corrupt or truncated gzip
/// stream, trailing data.
pub fn read_idx(path: &Path, ndim: u8) -> Result<IdxArray, DataError> {
    let io_err = |error: io::Error| DataError::Io {
        path: path.to_path_buf(),
        error,
    };
    let file = File::open(path).map_err(io_err)?;
    let file_len = file.metadata().map_err(io_err)?.len();
    read_idx_from(path, file, file_len, ndim)
}

/// [`read_idx`] on bytes already in memory (raw or gzip-compressed IDX);
/// errors name the file as `<memory>`. The same parser as for files: this is
/// the entry point the fuzz target drives.
pub fn read_idx_bytes(bytes: &[u8], ndim: u8) -> Result<IdxArray, DataError> {
    read_idx_from(Path::new("<memory>"), bytes, bytes.len() as u64, ndim)
}

/// The parser behind [`read_idx`] and [`read_idx_bytes`]: `input` holds
/// `input_len` bytes; `path` is what errors name.
fn read_idx_from<R: Read>(
    path: &Path,
    mut input: R,
    input_len: u64,
    ndim: u8,
) -> Result<IdxArray, DataError> {
    let io_err = |error: io::Error| DataError::Io {
        path: path.to_path_buf(),
        error,
    };
    let mut first = [0u8; 2];
    let got = read_up_to(&mut input, &mut first).map_err(io_err)?;
    let prefix = io::Cursor::new(first[..got].to_vec());
    let reader = BufReader::new(prefix.chain(input));

    if got == 2 && first == GZIP_MAGIC {
        let mut decoder = flate2::bufread::GzDecoder::new(reader);
        let array = read_body(path, &mut decoder, ndim, None)?;
        // The member is finished (read_body saw its end); anything left in the
        // input after it is trailing garbage.
        let mut rest = decoder.into_inner();
        let left = rest.fill_buf().map_err(io_err)?;
        if !left.is_empty() {
            return Err(DataError::TrailingData {
                path: path.to_path_buf(),
                expected: array.data.len() as u64,
                location: "after the gzip stream",
            });
        }
        Ok(array)
    } else {
        let mut reader = reader;
        read_body(path, &mut reader, ndim, Some(input_len))
    }
}

/// Parses the header and reads the body from `r` (the raw or decompressed
/// stream). `raw_len` is the file length for uncompressed input, used to
/// reject a short or long file before reading its body.
fn read_body<R: Read>(
    path: &Path,
    r: &mut R,
    ndim: u8,
    raw_len: Option<u64>,
) -> Result<IdxArray, DataError> {
    let gz = raw_len.is_none();
    let stream_err = |error: io::Error| -> DataError {
        if gz {
            DataError::Gzip {
                path: path.to_path_buf(),
                error,
            }
        } else {
            DataError::Io {
                path: path.to_path_buf(),
                error,
            }
        }
    };

    let mut magic = [0u8; 4];
    let got = read_up_to(r, &mut magic).map_err(stream_err)?;
    if got < 4 {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            what: "IDX header",
            expected: 4,
            found: got as u64,
        });
    }
    let magic_u32 = u32::from_be_bytes(magic);
    let expected_magic = u32::from_be_bytes([0, 0, IDX_TYPE_U8, ndim]);
    if magic[0] != 0 || magic[1] != 0 || magic[2] != IDX_TYPE_U8 {
        return Err(DataError::BadMagic {
            path: path.to_path_buf(),
            found: magic_u32,
            expected: expected_magic,
        });
    }
    if magic[3] != ndim {
        return Err(DataError::WrongDims {
            path: path.to_path_buf(),
            found: magic[3],
            expected: ndim,
        });
    }

    let header_len = 4 + 4 * ndim as usize;
    let mut dim_bytes = vec![0u8; 4 * ndim as usize];
    let got = read_up_to(r, &mut dim_bytes).map_err(stream_err)?;
    if got < dim_bytes.len() {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            what: "IDX header",
            expected: header_len as u64,
            found: (4 + got) as u64,
        });
    }
    let dims: Vec<u64> = dim_bytes
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as u64)
        .collect();
    let total = dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| DataError::DimsOverflow {
            path: path.to_path_buf(),
            dims: dims.clone(),
        })?;
    if total > MAX_IDX_BYTES || usize::try_from(total).is_err() {
        return Err(DataError::DimsTooLarge {
            path: path.to_path_buf(),
            dims,
            bytes: total,
            limit: MAX_IDX_BYTES,
        });
    }

    if let Some(file_len) = raw_len {
        let body = file_len.saturating_sub(header_len as u64);
        if body < total {
            return Err(DataError::Truncated {
                path: path.to_path_buf(),
                what: "IDX data",
                expected: total,
                found: body,
            });
        }
        if body > total {
            return Err(DataError::TrailingData {
                path: path.to_path_buf(),
                expected: total,
                location: "after the data",
            });
        }
    }

    // Grow with the data that arrives: the first reservation is capped, and
    // `extend_from_slice` grows geometrically from there.
    let mut data: Vec<u8> = Vec::with_capacity(total.min(CHUNK as u64) as usize);
    let mut chunk = vec![0u8; CHUNK];
    let mut limited = r.take(total);
    loop {
        let n = match limited.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(stream_err(e)),
        };
        data.extend_from_slice(&chunk[..n]);
    }
    if (data.len() as u64) < total {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            what: if gz {
                "IDX data (decompressed)"
            } else {
                "IDX data"
            },
            expected: total,
            found: data.len() as u64,
        });
    }

    if gz {
        // Drive the decoder to its end: this checks the gzip trailer (CRC-32
        // and length) and catches extra decompressed bytes.
        let r = limited.into_inner();
        let mut probe = [0u8; 1];
        let extra = read_up_to(r, &mut probe).map_err(stream_err)?;
        if extra > 0 {
            return Err(DataError::TrailingData {
                path: path.to_path_buf(),
                expected: total,
                location: "after the data in the decompressed stream",
            });
        }
    }

    Ok(IdxArray {
        dims: dims.into_iter().map(|d| d as usize).collect(),
        data,
    })
}

/// Reads until `buf` is full or the stream ends; returns the bytes read.
fn read_up_to<R: Read + ?Sized>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn temp_file(name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("bitprop-idx-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn labels_file(labels: &[u8]) -> Vec<u8> {
        let mut v = IDX_MAGIC_LABELS.to_be_bytes().to_vec();
        v.extend((labels.len() as u32).to_be_bytes());
        v.extend(labels);
        v
    }

    #[test]
    fn raw_and_gzip_labels_read_identically() {
        let raw = labels_file(&[3, 1, 4, 1, 5]);
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&raw).unwrap();
        let gz = enc.finish().unwrap();
        // No .gz suffix: detection is by the magic bytes.
        let p_raw = temp_file("labels-raw", &raw);
        let p_gz = temp_file("labels-gz-without-suffix", &gz);
        let a = read_idx(&p_raw, 1).unwrap();
        let b = read_idx(&p_gz, 1).unwrap();
        assert_eq!(a.dims, vec![5]);
        assert_eq!(a.data, vec![3, 1, 4, 1, 5]);
        assert_eq!(a, b);
    }

    #[test]
    fn bytes_and_file_entry_points_agree() {
        let raw = labels_file(&[9, 0, 2]);
        let p = temp_file("labels-for-bytes", &raw);
        assert_eq!(read_idx_bytes(&raw, 1).unwrap(), read_idx(&p, 1).unwrap());
        let err = read_idx_bytes(&raw[..raw.len() - 1], 1)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("<memory>: truncated IDX data: expected 3 bytes, found 2"),
            "{err}"
        );
    }

    #[test]
    fn one_byte_file_is_a_truncated_header() {
        let p = temp_file("one-byte", &[0x1f]);
        let err = read_idx(&p, 1).unwrap_err().to_string();
        assert!(
            err.contains("one-byte") && err.contains("truncated IDX header"),
            "{err}"
        );
    }

    #[test]
    fn gzip_trailer_crc_is_checked() {
        let raw = labels_file(&[1, 2, 3]);
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&raw).unwrap();
        let mut gz = enc.finish().unwrap();
        let n = gz.len();
        gz[n - 8] ^= 0xff; // first CRC byte
        let p = temp_file("bad-crc.gz", &gz);
        let err = read_idx(&p, 1).unwrap_err().to_string();
        assert!(err.contains("bad-crc.gz") && err.contains("gzip"), "{err}");
    }
}
