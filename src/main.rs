//! The `homeostat` command line.
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "homeostat", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the demo HTTP service (one replica of the demo target).
    DemoService(homeostat::demo::service::DemoServiceArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::DemoService(args) => homeostat::demo::service::run(args).await?,
    }
    Ok(())
}
