//! The `.bpm` reader (`BpmModel::from_bytes`, the parser behind `infer`)
//! on arbitrary bytes, as they are and with the length field and checksum
//! repaired (so mutations reach the layer records past the CRC check).
//!
//! Properties: no panic; no allocation beyond what the input holds (a
//! header may claim any layer count and shapes); an accepted file builds a
//! CPU runtime without panicking, and writes back to bytes that read again
//! to the same bytes (compared as bytes, so NaN parameters count as equal).

#![no_main]

use bitprop::export::cpu::CpuModel;
use bitprop::export::format::{BpmModel, HEADER_BYTES, TRAILER_BYTES, crc32};
use libfuzzer_sys::fuzz_target;

fn check(bytes: &[u8]) {
    let Ok(model) = BpmModel::from_bytes(bytes) else {
        return;
    };
    let _ = CpuModel::new(&model);
    let written = model.to_bytes();
    let again = BpmModel::from_bytes(&written).expect("a written model reads back");
    assert_eq!(again.to_bytes(), written);
}

fuzz_target!(|bytes: &[u8]| {
    check(bytes);
    let len = bytes.len();
    if len >= HEADER_BYTES + TRAILER_BYTES {
        let mut fixed = bytes.to_vec();
        fixed[12..16].copy_from_slice(&(len as u32).to_le_bytes());
        let crc = crc32(&fixed[..len - TRAILER_BYTES]);
        fixed[len - TRAILER_BYTES..].copy_from_slice(&crc.to_le_bytes());
        check(&fixed);
    }
});
