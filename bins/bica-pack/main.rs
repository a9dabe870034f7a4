use std::process::ExitCode;

fn main() -> ExitCode {
    bica::cli::main("bica-pack", bica::pack::run)
}
