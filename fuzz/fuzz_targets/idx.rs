//! The IDX reader (`bitprop::data::read_idx_bytes`, the parser behind
//! `read_idx`) on arbitrary bytes, raw or gzip.
//!
//! Properties: no panic; no allocation beyond what the input holds (run with
//! `-malloc_limit_mb`: a header may claim 2^32^3 bytes); on success the data
//! has exactly `prod(dims)` bytes and `ndim` dimensions; and for raw input
//! the result agrees with a direct reading of the format.

#![no_main]

use bitprop::data::read_idx_bytes;
use libfuzzer_sys::fuzz_target;

/// Direct reading of a raw u8 IDX file: `00 00 08 ndim`, `ndim` big-endian
/// u32 dimensions, then exactly `prod(dims)` bytes.
fn raw_oracle(bytes: &[u8], ndim: u8) -> Option<(Vec<usize>, &[u8])> {
    if bytes.len() < 4 || bytes[..4] != [0, 0, 8, ndim] {
        return None;
    }
    let header = 4 + 4 * ndim as usize;
    let dims: Vec<usize> = bytes
        .get(4..header)?
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let total = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d))?;
    (bytes.len() - header == total).then(|| (dims, &bytes[header..]))
}

fuzz_target!(|bytes: &[u8]| {
    let gzip = bytes.starts_with(&[0x1f, 0x8b]);
    for ndim in [1u8, 3] {
        let result = read_idx_bytes(bytes, ndim);
        if let Ok(a) = &result {
            assert_eq!(a.dims.len(), ndim as usize);
            assert_eq!(a.data.len(), a.dims.iter().product::<usize>());
        }
        if !gzip {
            match (&result, raw_oracle(bytes, ndim)) {
                (Ok(a), Some((dims, data))) => {
                    assert_eq!(a.dims, dims);
                    assert_eq!(a.data, data);
                }
                (Err(_), None) => {}
                (r, o) => panic!("reader {r:?} but the format says {o:?}"),
            }
        }
    }
});
