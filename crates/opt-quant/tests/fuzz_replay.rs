//! Every stored fuzz input of the `model.int8` target, replayed in the normal test run.

#[test]
fn stored_fuzz_inputs_are_handled() {
    let n = opt_core::fuzzing::replay("int8", opt_quant::fuzzing::int8);
    eprintln!("{n} stored inputs replayed");
}
