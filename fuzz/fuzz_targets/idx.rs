#![no_main]
//! Fuzz target: see opt_core::fuzzing::idx.
libfuzzer_sys::fuzz_target!(|data: &[u8]| opt_core::fuzzing::idx(data));
