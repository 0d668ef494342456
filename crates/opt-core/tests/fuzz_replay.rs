//! Every stored fuzz input (corpus and crash inputs) of the targets on what opt-core reads,
//! replayed in the normal test run: none may panic.

use opt_core::fuzzing::{graph, idx, model_folder, qweights, replay, sparse};

#[test]
fn stored_fuzz_inputs_are_handled() {
    let n = replay("idx", idx)
        + replay("sparse", sparse)
        + replay("qweights", qweights)
        + replay("graph", graph)
        + replay("model_folder", |d| {
            model_folder::<burn_flex::Flex>(d, &Default::default())
        });
    eprintln!("{n} stored inputs replayed");
}
