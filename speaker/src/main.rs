//! `swimlb-speaker`: answers ARP and NDP for the VIPs this node owns (static mode).

use anyhow::Context;
use clap::{Parser, ValueEnum};
use std::io::IsTerminal;
use std::path::PathBuf;
use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// swimlb speaker in static mode: VIPs from a YAML file, owners picked over a gossip cluster.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The static-mode configuration file (re-read on SIGHUP).
    #[arg(
        long,
        short,
        env = "SWIMLB_CONFIG",
        default_value = "/etc/swimlb/speaker.yaml"
    )]
    config: PathBuf,
    /// Log filter, in tracing's EnvFilter syntax.
    #[arg(long, env = "SWIMLB_LOG", default_value = "info")]
    log: String,
    #[arg(long, env = "SWIMLB_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let filter = EnvFilter::try_new(&args.log).context("invalid --log filter")?;
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stdout().is_terminal());
    match args.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime
        .block_on(swimlb_speaker::runtime::run(args.config))
        .context("swimlb-speaker failed")
}
