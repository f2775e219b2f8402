//! The policy file parser on arbitrary bytes: never a panic; an error is one line (what
//! `check-config` and a rejected reload print); an accepted policy compiles into map
//! contents or is refused with a one-line reason.
#![no_main]

use leakguard::{config, kernel::compile};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match config::parse(std::path::Path::new("fuzz.toml"), text) {
        Ok(config) => {
            if let Err(e) = compile::compile(&config.kernel) {
                assert_eq!(e.to_string().lines().count(), 1, "{e}");
            }
        }
        Err(e) => assert_eq!(e.to_string().lines().count(), 1, "{e}"),
    }
});
