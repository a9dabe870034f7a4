use std::process::ExitCode;

fn main() -> ExitCode {
    bica::cli::main("bica-state", bica::state::run)
}
