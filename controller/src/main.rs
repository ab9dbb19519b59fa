//! swimlb-controller: allocates addresses to LoadBalancer Services.

use std::io::IsTerminal;

use anyhow::Context;
use clap::Parser;
use swimlb_controller::cli::{Args, LogFormat};

fn init_tracing(log: &str, format: LogFormat) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(log).context("invalid --log filter")?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    init_tracing(&args.log, args.log_format)?;
    swimlb_controller::run::run(args).await?;
    Ok(())
}
