#![no_main]
//! Fuzz target: see opt_export::fuzzing::manifest.
libfuzzer_sys::fuzz_target!(|data: &[u8]| opt_export::fuzzing::manifest(data));
