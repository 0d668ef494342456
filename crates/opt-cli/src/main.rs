//! The `optkit` binary: everything happens in [`opt_cli::main_entry`].

use std::process::ExitCode;

fn main() -> ExitCode {
    ExitCode::from(opt_cli::main_entry(
        std::env::args_os(),
        &mut std::io::stderr(),
    ))
}
