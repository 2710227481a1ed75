#![no_main]
//! Policy-file loading (and evaluation with what loads) on arbitrary bytes.
libfuzzer_sys::fuzz_target!(|data: &[u8]| portcullis::fuzzing::policy(data));
