//! bica-prune (placeholder: being written).

use clap::Parser;

/// bica-prune
#[derive(Parser, Debug)]
#[command(name = "bica-prune", version)]
pub struct Cli {}

pub fn run(_cli: Cli) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}
