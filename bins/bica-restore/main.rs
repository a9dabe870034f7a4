use std::process::ExitCode;

fn main() -> ExitCode {
    bica::cli::main("bica-restore", bica::restore::run)
}
