use std::process::ExitCode;

fn main() -> ExitCode {
    bica::cli::main("bica-seal", bica::seal::run)
}
