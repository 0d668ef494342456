#![no_main]
//! Fuzz target: see opt_core::fuzzing::graph.
libfuzzer_sys::fuzz_target!(|data: &[u8]| opt_core::fuzzing::graph(data));
