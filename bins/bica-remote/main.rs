use std::process::ExitCode;

fn main() -> ExitCode {
    bica::cli::main("bica-remote", bica::remote::run)
}
