//! The config parser (`bitprop::train::TrainConfig::from_toml_str`, the
//! parser behind `--config FILE`) and `validate` on arbitrary text.
//!
//! Properties: no panic; every error is one line; a configuration that
//! validates serializes (`to_toml`, what a run writes as `config.toml` and
//! `--resume` reads back) and parses back to itself.

#![no_main]

use std::path::Path;

use bitprop::train::TrainConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    let origin = Path::new("fuzz.toml");
    let config = match TrainConfig::from_toml_str(text, origin) {
        Ok(c) => c,
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.contains('\n'), "multi-line error: {msg}");
            return;
        }
    };
    if let Err(e) = config.validate() {
        let msg = e.to_string();
        assert!(!msg.contains('\n'), "multi-line error: {msg}");
        return;
    }
    let written = config.to_toml();
    let back = TrainConfig::from_toml_str(&written, origin)
        .unwrap_or_else(|e| panic!("to_toml wrote what does not parse: {e}\n{written}"));
    assert_eq!(back, config, "round trip through\n{written}");
});
