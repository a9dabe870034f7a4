use std::process::ExitCode;

fn main() -> ExitCode {
    bica::cli::main("bica-config", bica::config::run)
}
