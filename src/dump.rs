//! bica-dump (placeholder: being written).

use clap::Parser;

/// bica-dump
#[derive(Parser, Debug)]
#[command(name = "bica-dump", version)]
pub struct Cli {}

pub fn run(_cli: Cli) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}
