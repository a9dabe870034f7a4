//! bica-pack (placeholder: being written).

use clap::Parser;

/// bica-pack
#[derive(Parser, Debug)]
#[command(name = "bica-pack", version)]
pub struct Cli {}

pub fn run(_cli: Cli) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}
