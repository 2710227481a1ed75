#![no_main]
//! CEL rules on arbitrary expressions (first line) and objects (the rest).
libfuzzer_sys::fuzz_target!(|data: &[u8]| portcullis::fuzzing::cel(data));
