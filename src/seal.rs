//! bica-seal (placeholder: being written).

use clap::Parser;

/// bica-seal
#[derive(Parser, Debug)]
#[command(name = "bica-seal", version)]
pub struct Cli {}

pub fn run(_cli: Cli) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}
