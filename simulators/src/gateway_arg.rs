//! The `--gateway-bin` option of every command that starts a gateway of its own.

use std::path::PathBuf;

use clap::Args;

/// Which `linli` binary to start.
#[derive(Args, Debug, Clone)]
pub struct GatewayBin {
    /// The `linli` binary (default: `linli` beside this one).
    #[arg(long = "gateway-bin")]
    gateway_bin: Option<PathBuf>,
}

impl GatewayBin {
    /// The binary: the one given, else `linli` beside this program.
    pub fn path(&self) -> anyhow::Result<PathBuf> {
        match &self.gateway_bin {
            Some(p) => Ok(p.clone()),
            None => Ok(std::env::current_exe()?.with_file_name("linli")),
        }
    }
}
