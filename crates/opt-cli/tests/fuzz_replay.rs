//! Every stored fuzz input of the pipeline-file target, replayed in the normal test run.

#[test]
fn stored_fuzz_inputs_are_handled() {
    let n = opt_core::fuzzing::replay("pipeline_toml", opt_cli::fuzzing::pipeline_toml);
    eprintln!("{n} stored inputs replayed");
}
