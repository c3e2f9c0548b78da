//! Options of the commands that start a gateway of their own: which binary
//! (`--gateway-bin`), and where its scratch files go (`--work-dir`, `--keep`).

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

/// Where a run keeps its gateway's config and data.
#[derive(Args, Debug, Clone)]
pub struct Scratch {
    /// Scratch directory for the gateway's config and data (default: a new one under
    /// $TMPDIR).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Keep the scratch directory afterwards.
    #[arg(long)]
    pub keep: bool,
}
