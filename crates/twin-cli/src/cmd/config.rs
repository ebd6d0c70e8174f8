//! `twin config --show`: the effective configuration (defaults, file, `TWIN_*`
//! variables) with secrets redacted, so a deployment can be checked before it starts.

use std::path::PathBuf;

use anyhow::Context;
use twin_core::config::TwinConfig;

#[derive(Debug, clap::Args)]
pub struct ConfigArgs {
    /// Print the effective configuration as TOML (secrets redacted).
    #[arg(long)]
    pub show: bool,
    /// Configuration file (TOML); `TWIN_<SECTION>__<KEY>` variables override it.
    #[arg(long, env = "TWIN_CONFIG")]
    pub config: Option<PathBuf>,
}

pub fn run(args: ConfigArgs) -> anyhow::Result<()> {
    let config = TwinConfig::from_env(args.config.as_deref()).context("invalid configuration")?;
    if args.show {
        print!("{}", config.redacted_toml());
    } else {
        println!("configuration is valid; `twin config --show` prints it");
    }
    Ok(())
}
