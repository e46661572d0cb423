//! The checkpoint loader (`bitprop::checkpoint::load_bytes`, the parser
//! behind `load`) on arbitrary bytes, then the strict take that model
//! loading does.
//!
//! Properties: no panic; no allocation beyond what the input holds (a header
//! may claim any shape and offsets); every loaded tensor has as many values
//! as its shape says; the strict take of exactly the loaded tensors succeeds
//! for F32-only checkpoints and fails cleanly otherwise.

#![no_main]

use std::path::Path;

use bitprop::checkpoint::{TensorData, load_bytes};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Ok(ck) = load_bytes(Path::new("fuzz.safetensors"), bytes) else {
        return;
    };
    for (shape, data) in ck.tensors.values() {
        let numel = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        assert_eq!(numel, Some(data.len()));
    }
    let expected: Vec<(String, Vec<usize>)> = ck
        .tensors
        .iter()
        .map(|(n, (s, _))| (n.clone(), s.clone()))
        .collect();
    let all_f32 = ck
        .tensors
        .values()
        .all(|(_, d)| matches!(d, TensorData::F32(_)));
    let mut strict = ck.clone();
    let taken = strict.take_strict(&expected);
    assert_eq!(taken.is_ok(), all_f32);
    if let Ok(values) = taken {
        assert!(strict.tensors.is_empty());
        for ((name, _), v) in expected.iter().zip(values) {
            // Bit patterns: NaN payloads must come through unchanged too.
            let TensorData::F32(stored) = &ck.tensors[name].1 else {
                unreachable!("all_f32");
            };
            let bits = |x: &[f32]| x.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&v), bits(stored));
        }
    }
    // A wrong expectation (one more dimension) fails without panicking.
    if let Some((name, shape)) = expected.first() {
        let mut wrong = shape.clone();
        wrong.push(1);
        let mut c = ck.clone();
        assert!(c.take_strict(&[(name.clone(), wrong)]).is_err());
        let mut c = ck.clone();
        let _ = c.take_i64(name, shape);
    }
});
