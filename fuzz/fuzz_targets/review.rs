#![no_main]
//! AdmissionReview decoding + evaluation + encoding on arbitrary bytes.
libfuzzer_sys::fuzz_target!(|data: &[u8]| portcullis::fuzzing::review(data));
