//! `linli user …` and `linli audit`: the people who sign in to the dashboard (added,
//! listed, given a new password, removed) and the audit log, straight on the gateway's
//! database (a running gateway sees the change at once).
//!
//! Owns only the command line; the records are `linli_gateway::people`'s.

use std::io::Read;

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use linli_gateway::config::Config;
use linli_gateway::people::{db, People, Role};

#[derive(Subcommand, Debug)]
pub enum UserAction {
    /// Add a person who signs in to the dashboard. Without --password-stdin a password is
    /// made and printed once.
    Add {
        /// Sign-in name (1-64 of A-Z a-z 0-9 . _ -).
        name: String,
        /// caregiver, supervisor, crew or admin.
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// Zones they work in, comma-separated; `*` for every zone.
        #[arg(long)]
        zones: String,
        /// Name shown to others (default: the sign-in name).
        #[arg(long, default_value = "")]
        display_name: String,
        /// Read the password (at least 10 characters) from standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List everyone with their role and zones.
    List,
    /// Set a new password (ends their sessions). Without --password-stdin a password is
    /// made and printed once.
    Passwd {
        /// Sign-in name.
        name: String,
        /// Read the password from standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Remove a person (their sessions end; the audit log keeps their name).
    Remove {
        /// Sign-in name.
        name: String,
    },
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).ok_or_else(|| {
        let all: Vec<_> = Role::ALL.iter().map(|r| r.as_str()).collect();
        format!("unknown role {s:?}; one of: {}", all.join(", "))
    })
}

fn open(config: &Config) -> Result<People> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating {}", config.data_dir.display()))?;
    People::open(&config.data_dir, config.web.session_limits())
        .with_context(|| format!("opening the people tables in {}", config.data_dir.display()))
}

/// The password from stdin (first line), or a new one to print.
fn password(from_stdin: bool) -> Result<(String, bool)> {
    if !from_stdin {
        let mut b = [0u8; 9];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut b);
        return Ok((hex::encode(b), true));
    }
    let mut s = String::new();
    std::io::stdin()
        .read_to_string(&mut s)
        .context("reading the password from standard input")?;
    let pw = s.lines().next().unwrap_or_default().to_owned();
    if pw.is_empty() {
        bail!("no password on standard input");
    }
    Ok((pw, false))
}

/// Runs `linli user …`.
pub fn user(config: &Config, action: UserAction) -> Result<()> {
    let people = open(config)?;
    let now = linli_gateway::clock::now_ms();
    match action {
        UserAction::Add {
            name,
            role,
            zones,
            display_name,
            password_stdin,
        } => {
            let zones = db::parse_zones(&zones)?;
            let (pw, made) = password(password_stdin)?;
            people.add(&name, &display_name, role, &zones, &pw, now)?;
            println!(
                "{name} added ({}, zones {}).",
                role.as_str(),
                zones.join(",")
            );
            if made {
                println!("  password (shown once): {pw}");
            }
        }
        UserAction::List => {
            for p in people.list()? {
                println!(
                    "{}\t{}\t{}\t{}",
                    p.name,
                    p.role.as_str(),
                    p.zones.join(","),
                    p.display_name
                );
            }
        }
        UserAction::Passwd {
            name,
            password_stdin,
        } => {
            let (pw, made) = password(password_stdin)?;
            people.set_password(&name, &pw)?;
            println!("{name}: password changed; their sessions ended.");
            if made {
                println!("  password (shown once): {pw}");
            }
        }
        UserAction::Remove { name } => {
            people.remove(&name)?;
            println!("{name} removed.");
        }
    }
    Ok(())
}

/// Runs `linli audit`.
pub fn audit(config: &Config, target: Option<&str>, limit: usize) -> Result<()> {
    let people = open(config)?;
    for e in people.audit_log(target, limit)? {
        println!(
            "{}\t{}\t{}\t{}\t{}\t{}",
            e.t_ms, e.name, e.role, e.action, e.target, e.detail
        );
    }
    Ok(())
}
