//! The `.bpm` reader (`BpmModel::from_bytes`, the parser behind `infer`)
//! on arbitrary bytes.
//!
//! Properties: no panic; no allocation beyond what the input holds (a
//! header may claim any layer count and shapes); an accepted file builds a
//! CPU runtime without panicking, and writes back to bytes that read again
//! to the same bytes (compared as bytes, so NaN parameters count as equal).

#![no_main]

use bitprop::export::cpu::CpuModel;
use bitprop::export::format::BpmModel;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Ok(model) = BpmModel::from_bytes(bytes) else {
        return;
    };
    let _ = CpuModel::new(&model);
    let written = model.to_bytes();
    let again = BpmModel::from_bytes(&written).expect("a written model reads back");
    assert_eq!(again.to_bytes(), written);
});
