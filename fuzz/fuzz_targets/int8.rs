#![no_main]
//! Fuzz target: see opt_quant::fuzzing::int8.
libfuzzer_sys::fuzz_target!(|data: &[u8]| opt_quant::fuzzing::int8(data));
