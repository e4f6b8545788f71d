//! `stowage lock …`: leases with fencing tokens on any storage backend.
//!
//! The lease logic is the library's (`stowage_host::lease`); this module is the command
//! line around it. `lock run` lives in `lock_run.rs`.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use stowage_host::Stowage;
use stowage_host::lease::{AcquireOptions, LeaseInfo, LeaseToken, Leases, WaitEvent};

use super::CmdResult;
use crate::output::{self, Output};
use crate::signals::Interrupt;

/// Where the lease records are.
#[derive(Args, Debug, Clone)]
pub struct LeaseTarget {
    /// The storage backend holding the lease records (default: `default-storage`).
    #[arg(long, short = 'b')]
    pub backend: Option<String>,
    /// The leases' namespace (their group in the `stowage-leases` collection).
    #[arg(long, env = "STOWAGE_LEASE_NAMESPACE", default_value = "")]
    pub namespace: String,
}

/// How to acquire.
#[derive(Args, Debug, Clone)]
pub struct AcquireArgs {
    /// Who holds the lease, for people reading it (default: user@host, and the pid for
    /// `lock run`).
    #[arg(long, env = "STOWAGE_LEASE_OWNER")]
    pub owner: Option<String>,
    /// How long the lease lasts without a renewal (at least 1s).
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    pub ttl: Duration,
    /// Wait this long for a held lease to be released, or to expire and be taken over
    /// (which needs at least its TTL); 0 fails at once.
    #[arg(long, value_parser = parse_duration, default_value = "0s")]
    pub wait: Duration,
}

#[derive(Subcommand, Debug)]
pub enum LockCommand {
    /// Acquire a lease; prints its fencing token. Renew it within its TTL, then release it.
    Acquire {
        #[command(flatten)]
        target: LeaseTarget,
        /// The lease's name.
        name: String,
        #[command(flatten)]
        acquire: AcquireArgs,
    },
    /// Renew a held lease for another TTL.
    Renew {
        #[command(flatten)]
        target: LeaseTarget,
        /// The lease's name.
        name: String,
        /// The token `lock acquire` printed.
        #[arg(long, env = "STOWAGE_LEASE_TOKEN")]
        token: LeaseToken,
    },
    /// Release a held lease (its record stays, so tokens keep counting up).
    Release {
        #[command(flatten)]
        target: LeaseTarget,
        /// The lease's name.
        name: String,
        /// The token `lock acquire` printed.
        #[arg(long, env = "STOWAGE_LEASE_TOKEN")]
        token: LeaseToken,
    },
    /// Show a lease: state, owner, token, TTL, and the holder's timestamps.
    Show {
        #[command(flatten)]
        target: LeaseTarget,
        /// The lease's name.
        name: String,
    },
    /// List the leases of a namespace.
    List {
        #[command(flatten)]
        target: LeaseTarget,
    },
    /// Run a command while holding a lease, renewing it in the background; the command
    /// gets STOWAGE_LEASE, STOWAGE_LEASE_TOKEN and STOWAGE_LEASE_NAMESPACE. If the lease
    /// is lost, the command is stopped (SIGTERM, then SIGKILL after --grace) and this
    /// exits with 10; otherwise with the command's exit code.
    Run(super::lock_run::RunArgs),
}

impl LockCommand {
    /// Whether the command changes stored data.
    pub fn writes(&self) -> bool {
        !matches!(self, LockCommand::Show { .. } | LockCommand::List { .. })
    }

    /// `lock run` handles signals itself.
    pub fn owns_signals(&self) -> bool {
        matches!(self, LockCommand::Run(_))
    }
}

/// Parses `30s`, `5m`, `1h 30m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{s:?} is not a duration like 30s or 5m: {e}"))
}

/// `user@host`, and ` (pid N)` when `with_pid`.
pub fn default_owner(with_pid: bool) -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| format!("uid {}", unsafe { libc::getuid() }));
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let host = if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0 {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        "localhost".to_owned()
    };
    if with_pid {
        format!("{user}@{host} (pid {})", std::process::id())
    } else {
        format!("{user}@{host}")
    }
}

/// The leases of a target.
pub async fn open(stowage: &Stowage, target: &LeaseTarget) -> Result<Leases, stowage_host::Error> {
    let storage = stowage.storage(target.backend.as_deref())?;
    Leases::open(storage, target.namespace.clone()).await
}

/// Tells a waiting user who holds the lease and since when (stderr).
pub fn report_wait(event: WaitEvent<'_>, wait: Duration) {
    match event {
        // Failing at once says the same in its error; no need to say it twice.
        WaitEvent::Held(_) if wait.is_zero() => {}
        WaitEvent::Held(info) => eprintln!(
            "stowage: lease {} is {}; waiting up to {}",
            info.title(),
            info.describe(),
            humantime::format_duration(wait)
        ),
        WaitEvent::TakingOver(info) => eprintln!(
            "stowage: lease {}: its holder {} (token {}) has not renewed it for its TTL ({}) as \
             seen from here; taking it over",
            info.title(),
            info.record.owner,
            info.record.token,
            humantime::format_duration(info.record.ttl())
        ),
        _ => {}
    }
}

pub async fn run(
    cmd: LockCommand,
    stowage: &Stowage,
    out: Output,
    interrupt: Option<Interrupt>,
) -> CmdResult {
    match cmd {
        LockCommand::Acquire {
            target,
            name,
            acquire,
        } => {
            let leases = open(stowage, &target).await?;
            let options = AcquireOptions::new(
                acquire.owner.unwrap_or_else(|| default_owner(false)),
                acquire.ttl,
            )
            .wait(acquire.wait);
            let lease = leases
                .acquire_with(
                    &name,
                    &options,
                    |e| report_wait(e, acquire.wait),
                    std::future::pending(),
                )
                .await?
                .expect("not cancellable");
            match out {
                Output::Json => output::json(&lease_json(&leases, &name).await?),
                Output::Text => {
                    crate::outln!("{}", lease.token());
                    eprintln!(
                        "acquired lease {} (token {}, ttl {}) for {}: renew it within its TTL \
                         with `stowage lock renew {name:?} --token {t}`, and release it with \
                         `stowage lock release {name:?} --token {t}`",
                        lease.title(),
                        lease.token(),
                        humantime::format_duration(lease.ttl()),
                        lease.record().owner,
                        t = lease.token(),
                    );
                }
            }
        }
        LockCommand::Renew {
            target,
            name,
            token,
        } => {
            let leases = open(stowage, &target).await?;
            let mut lease = leases.resume(&name, token).await?;
            leases.renew(&mut lease).await?;
            match out {
                Output::Json => output::json(&lease_json(&leases, &name).await?),
                Output::Text => eprintln!(
                    "renewed lease {} (token {}) for {}",
                    lease.title(),
                    lease.token(),
                    humantime::format_duration(lease.ttl())
                ),
            }
        }
        LockCommand::Release {
            target,
            name,
            token,
        } => {
            let leases = open(stowage, &target).await?;
            let lease = leases.resume(&name, token).await?;
            leases.release(&lease).await?;
            match out {
                Output::Json => output::json(&lease_json(&leases, &name).await?),
                Output::Text => eprintln!("released lease {} (token {})", lease.title(), token),
            }
        }
        LockCommand::Show { target, name } => {
            let leases = open(stowage, &target).await?;
            let Some(info) = leases.inspect(&name).await? else {
                return Err(never_acquired(&leases, &name));
            };
            match out {
                Output::Json => output::json(&info.to_json()),
                Output::Text => show(&info),
            }
        }
        LockCommand::List { target } => {
            let leases = open(stowage, &target).await?;
            let all = leases.list().await?;
            match out {
                Output::Json => output::json(&serde_json::json!({
                    "leases": all.iter().map(LeaseInfo::to_json).collect::<Vec<_>>(),
                })),
                Output::Text => {
                    let rows: Vec<Vec<String>> = all
                        .iter()
                        .map(|i| {
                            let r = &i.record;
                            vec![
                                i.name.clone(),
                                r.state.as_str().to_owned(),
                                r.token.to_string(),
                                humantime::format_duration(r.ttl()).to_string(),
                                r.acquired_at.clone(),
                                r.owner.clone(),
                            ]
                        })
                        .collect();
                    output::table(&["NAME", "STATE", "TOKEN", "TTL", "SINCE", "OWNER"], &rows);
                }
            }
        }
        LockCommand::Run(args) => {
            let interrupt = match interrupt {
                Some(i) => i,
                None => {
                    Interrupt::install().map_err(super::io_err("cannot install signal handlers"))?
                }
            };
            return super::lock_run::run(args, stowage, out, interrupt).await;
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn lease_json(leases: &Leases, name: &str) -> Result<serde_json::Value, stowage_host::Error> {
    match leases.inspect(name).await? {
        Some(info) => Ok(info.to_json()),
        None => Err(never_acquired(leases, name)),
    }
}

fn never_acquired(leases: &Leases, name: &str) -> stowage_host::Error {
    stowage_host::Error::Backend {
        backend: leases.storage().name().to_owned(),
        error: stowage_host::protocol::PluginError::not_found(format!(
            "there is no lease {name:?}{} in backend '{}': it has never been acquired",
            if leases.namespace().is_empty() {
                String::new()
            } else {
                format!(" in namespace '{}'", leases.namespace())
            },
            leases.storage().name()
        )),
    }
}

fn show(info: &LeaseInfo) {
    let r = &info.record;
    let rows = [
        ("lease", info.name.clone()),
        (
            "namespace",
            if info.namespace.is_empty() {
                "(none)".to_owned()
            } else {
                info.namespace.clone()
            },
        ),
        ("state", r.state.as_str().to_owned()),
        ("owner", r.owner.clone()),
        ("token", r.token.to_string()),
        ("ttl", humantime::format_duration(r.ttl()).to_string()),
        ("acquired", format!("{} (holder's clock)", r.acquired_at)),
        ("renewed", format!("{} (holder's clock)", r.renewed_at)),
        (
            "released",
            r.released_at.clone().unwrap_or_else(|| "-".to_owned()),
        ),
        ("version", info.version.clone()),
    ];
    for (k, v) in rows {
        crate::outln!("{:<10} {v}", format!("{k}:"));
    }
}
