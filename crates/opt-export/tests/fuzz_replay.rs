//! Every stored fuzz input of the manifest target, replayed in the normal test run.

#[test]
fn stored_fuzz_inputs_are_handled() {
    let n = opt_core::fuzzing::replay("manifest", opt_export::fuzzing::manifest);
    eprintln!("{n} stored inputs replayed");
}
