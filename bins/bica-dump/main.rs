use std::process::ExitCode;

fn main() -> ExitCode {
    bica::cli::main("bica-dump", bica::dump::run)
}
