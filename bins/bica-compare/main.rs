use std::process::ExitCode;

fn main() -> ExitCode {
    bica::cli::main("bica-compare", bica::compare::run)
}
