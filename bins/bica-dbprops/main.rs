use std::process::ExitCode;

fn main() -> ExitCode {
    bica::cli::main("bica-dbprops", bica::dbprops::run)
}
