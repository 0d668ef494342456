#![no_main]
//! Fuzz target: see opt_core::fuzzing::model_folder (on burn-flex).
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    opt_core::fuzzing::model_folder::<burn_flex::Flex>(data, &Default::default())
});
