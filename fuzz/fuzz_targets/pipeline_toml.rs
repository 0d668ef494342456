#![no_main]
//! Fuzz target: see opt_cli::fuzzing::pipeline_toml.
libfuzzer_sys::fuzz_target!(|data: &[u8]| opt_cli::fuzzing::pipeline_toml(data));
