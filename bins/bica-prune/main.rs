use std::process::ExitCode;

fn main() -> ExitCode {
    bica::cli::main("bica-prune", bica::prune::run)
}
