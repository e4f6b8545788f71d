//! `stowage storage …`

use std::path::PathBuf;
use std::process::ExitCode;

use base64::Engine as _;
use clap::{Args, Subcommand};
use stowage_host::lease::{Fence, FencedWrite, LeaseToken, read_fenced};
use stowage_host::protocol::{CountQuery, DocumentKey, ListQuery, PluginError, Precondition};
use stowage_host::rmw::{Update, contention_policy, read_modify_write};
use stowage_host::{Error, StorageHandle, Stowage};

use super::{CmdResult, io_err};
use crate::output::{self, Output};
use crate::signals::Interrupt;

#[derive(Args, Debug)]
pub struct Target {
    /// The storage backend (default: `default-storage` from the config).
    #[arg(long, short = 'b')]
    backend: Option<String>,
    /// The collection (`installations`, `claims`, `credentials`, …).
    collection: String,
    /// The group inside the collection (a namespace, an installation); empty by default.
    #[arg(long, short = 'g', default_value = "")]
    group: String,
}

/// Writing under a lease (see `stowage lock run`, which sets the environment).
#[derive(Args, Debug)]
pub struct FenceArgs {
    /// Read or write under the lease in STOWAGE_LEASE with token STOWAGE_LEASE_TOKEN (as
    /// `stowage lock run` sets them): a write is refused with `conflict` (exit 4) once a
    /// newer holder of the lease has written the document. Values are stored in an envelope
    /// that `get --fenced` removes.
    #[arg(long)]
    fenced: bool,
    /// The lease, for --fenced.
    #[arg(long, env = "STOWAGE_LEASE", value_name = "NAME")]
    lease: Option<String>,
    /// The lease's token, for --fenced.
    #[arg(long, env = "STOWAGE_LEASE_TOKEN", value_name = "TOKEN")]
    lease_token: Option<LeaseToken>,
    /// The lease's namespace, for --fenced.
    #[arg(long, env = "STOWAGE_LEASE_NAMESPACE", default_value = "")]
    lease_namespace: String,
}

impl FenceArgs {
    /// The fence, if --fenced was given.
    fn fence(&self, backend: &str) -> Result<Option<Fence>, Error> {
        if !self.fenced {
            return Ok(None);
        }
        let (Some(lease), Some(token)) = (&self.lease, self.lease_token) else {
            return Err(Error::Backend {
                backend: backend.to_owned(),
                error: PluginError::invalid_argument(
                    "--fenced needs a lease and its token: run under `stowage lock run`, or \
                     pass --lease and --lease-token",
                ),
            });
        };
        Ok(Some(Fence {
            namespace: self.lease_namespace.clone(),
            lease: lease.clone(),
            token,
        }))
    }
}

#[derive(Subcommand, Debug)]
pub enum StorageCommand {
    /// Print a document's value (raw bytes; with --output json, base64 and its version).
    Get {
        #[command(flatten)]
        target: Target,
        /// The document's name.
        name: String,
        /// Write the value to this file instead of stdout.
        #[arg(long, short = 'o', value_name = "FILE")]
        out: Option<PathBuf>,
        #[command(flatten)]
        fence: FenceArgs,
    },
    /// Write a document from a file or stdin; prints the new version.
    Put {
        #[command(flatten)]
        target: Target,
        /// The document's name.
        name: String,
        /// Read the value from this file (default: stdin).
        #[arg(long, short = 'f', value_name = "FILE")]
        file: Option<PathBuf>,
        /// Only if the document is currently at this version.
        #[arg(long, value_name = "VERSION", conflicts_with = "if_absent")]
        if_version: Option<String>,
        /// Only if the document does not exist yet.
        #[arg(long)]
        if_absent: bool,
        #[command(flatten)]
        fence: FenceArgs,
    },
    /// Delete a document.
    Delete {
        #[command(flatten)]
        target: Target,
        /// The document's name.
        name: String,
        /// Only if the document is currently at this version.
        #[arg(long, value_name = "VERSION")]
        if_version: Option<String>,
        #[command(flatten)]
        fence: FenceArgs,
    },
    /// Add to a decimal counter document with an optimistic read-modify-write; prints the
    /// new value (used by the tests of concurrent writers).
    #[command(hide = true)]
    Increment {
        #[command(flatten)]
        target: Target,
        /// The document's name.
        name: String,
        /// How many increments of one, each its own read-modify-write.
        #[arg(long, default_value_t = 1)]
        times: u32,
    },
    /// List documents of a collection and group (all pages unless --page-size is given).
    List {
        #[command(flatten)]
        target: Target,
        /// Only names starting with this.
        #[arg(long, default_value = "")]
        prefix: String,
        /// Return one page of at most this many entries (and the token for the next).
        #[arg(long)]
        page_size: Option<u32>,
        /// Continue after a previous page.
        #[arg(long, requires = "page_size")]
        page_token: Option<String>,
    },
    /// Copy every document from one backend to another, with a progress bar; safe to rerun
    /// (identical documents are skipped, differing ones kept unless --overwrite), and
    /// verified at the end. Exit 0: complete; 4: some destination documents differ and
    /// were left alone; 1: failures or a failed verification; 130: Ctrl-C (rerun to finish).
    Migrate(super::storage_migrate::MigrateArgs),
    /// Count documents of a collection and group.
    Count {
        #[command(flatten)]
        target: Target,
        /// Only names starting with this.
        #[arg(long, default_value = "")]
        prefix: String,
    },
}

impl StorageCommand {
    /// Whether the command changes stored data.
    pub fn writes(&self) -> bool {
        matches!(
            self,
            StorageCommand::Put { .. }
                | StorageCommand::Delete { .. }
                | StorageCommand::Increment { .. }
                | StorageCommand::Migrate(_)
        )
    }

    /// Whether the command handles SIGINT/SIGTERM/SIGHUP itself (`migrate` finishes the
    /// copies in flight and reports).
    pub fn owns_signals(&self) -> bool {
        matches!(self, StorageCommand::Migrate(_))
    }
}

pub async fn run(
    cmd: StorageCommand,
    stowage: &Stowage,
    out: Output,
    interrupt: Option<Interrupt>,
) -> CmdResult {
    match cmd {
        StorageCommand::Migrate(args) => {
            let interrupt = match interrupt {
                Some(i) => i,
                None => {
                    Interrupt::install().map_err(super::io_err("cannot install signal handlers"))?
                }
            };
            return super::storage_migrate::run(args, stowage, out, interrupt).await;
        }
        StorageCommand::Get {
            target,
            name,
            out: file,
            fence,
        } => {
            let storage = stowage.storage(target.backend.as_deref())?;
            let key = DocumentKey::new(target.collection, target.group, name);
            let doc = if fence.fenced {
                let read = read_fenced(&storage, &key).await?;
                stowage_host::protocol::Document {
                    value: read.value.into(),
                    version: read.version,
                }
            } else {
                storage.get(&key).await?
            };
            match (file, out) {
                (Some(path), _) => {
                    std::fs::write(&path, doc.value.as_slice())
                        .map_err(io_err(format!("cannot write {}", path.display())))?;
                    if out == Output::Json {
                        output::json(
                            &serde_json::json!({ "version": doc.version, "size": doc.value.len(), "file": path }),
                        );
                    } else {
                        eprintln!(
                            "wrote {} bytes (version {}) to {}",
                            doc.value.len(),
                            doc.version,
                            path.display()
                        );
                    }
                }
                (None, Output::Json) => output::json(&serde_json::json!({
                    "collection": key.collection, "group": key.group, "name": key.name,
                    "version": doc.version,
                    "size": doc.value.len(),
                    "value_base64": base64::engine::general_purpose::STANDARD.encode(doc.value.as_slice()),
                })),
                (None, Output::Text) => output::raw(doc.value.as_slice()),
            }
        }
        StorageCommand::Put {
            target,
            name,
            file,
            if_version,
            if_absent,
            fence,
        } => {
            let storage = stowage.storage(target.backend.as_deref())?;
            let value = match &file {
                Some(path) => {
                    let what = path.display().to_string();
                    std::fs::File::open(path)
                        .and_then(super::read_input)
                        .map_err(super::input_err(storage.name(), &what))?
                }
                None => super::read_input(std::io::stdin().lock())
                    .map_err(super::input_err(storage.name(), "stdin"))?,
            };
            let precondition = match (if_version, if_absent) {
                (Some(v), _) => Precondition::Version(v),
                (None, true) => Precondition::Absent,
                (None, false) => Precondition::Any,
            };
            let key = DocumentKey::new(target.collection, target.group, name);
            let size = value.len();
            let version = match fence.fence(storage.name())? {
                Some(fence) => {
                    no_precondition_with_fence(storage.name(), &precondition)?;
                    FencedWrite::new(storage.clone(), fence)
                        .put(&key, value)
                        .await?
                }
                None => storage.put(&key, value, precondition).await?,
            };
            match out {
                Output::Json => {
                    output::json(&serde_json::json!({ "version": version, "size": size }))
                }
                Output::Text => crate::outln!("{version}"),
            }
        }
        StorageCommand::Delete {
            target,
            name,
            if_version,
            fence,
        } => {
            let storage = stowage.storage(target.backend.as_deref())?;
            let key = DocumentKey::new(target.collection, target.group, name);
            let precondition = if_version.map_or(Precondition::Any, Precondition::Version);
            match fence.fence(storage.name())? {
                Some(fence) => {
                    no_precondition_with_fence(storage.name(), &precondition)?;
                    FencedWrite::new(storage.clone(), fence)
                        .delete(&key)
                        .await?
                }
                None => storage.delete(&key, precondition).await?,
            }
            if out == Output::Json {
                output::json(&serde_json::json!({ "deleted": true }));
            }
        }
        StorageCommand::List {
            target,
            prefix,
            page_size,
            page_token,
        } => {
            let storage = stowage.storage(target.backend.as_deref())?;
            let (items, next) = match page_size {
                Some(size) => {
                    let page = storage
                        .list(&ListQuery {
                            collection: target.collection,
                            group: target.group,
                            prefix,
                            page_size: size,
                            page_token,
                        })
                        .await?;
                    (page.items, page.next_page_token)
                }
                None => (
                    storage
                        .list_all(&target.collection, &target.group, &prefix)
                        .await?,
                    None,
                ),
            };
            match out {
                Output::Json => output::json(&serde_json::json!({
                    "items": items.iter().map(|m| serde_json::json!({"name": m.name, "version": m.version, "size": m.size})).collect::<Vec<_>>(),
                    "next_page_token": next,
                })),
                Output::Text => {
                    let rows: Vec<Vec<String>> = items
                        .iter()
                        .map(|m| vec![m.name.clone(), m.version.clone(), m.size.to_string()])
                        .collect();
                    output::table(&["NAME", "VERSION", "SIZE"], &rows);
                    if let Some(t) = next {
                        eprintln!("more: --page-token {t:?}");
                    }
                }
            }
        }
        StorageCommand::Increment {
            target,
            name,
            times,
        } => {
            let storage = stowage.storage(target.backend.as_deref())?;
            let key = DocumentKey::new(target.collection, target.group, name);
            let mut value = 0;
            for _ in 0..times {
                value = increment(&storage, &key).await?;
            }
            match out {
                Output::Json => output::json(&serde_json::json!({ "value": value })),
                Output::Text => crate::outln!("{value}"),
            }
        }
        StorageCommand::Count { target, prefix } => {
            let storage = stowage.storage(target.backend.as_deref())?;
            let n = storage
                .count(&CountQuery {
                    collection: target.collection,
                    group: target.group,
                    prefix,
                })
                .await?;
            match out {
                Output::Json => output::json(&serde_json::json!({ "count": n })),
                Output::Text => crate::outln!("{n}"),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A fenced write has its own precondition (the envelope's token); another one would not
/// combine with it.
fn no_precondition_with_fence(backend: &str, precondition: &Precondition) -> Result<(), Error> {
    if *precondition == Precondition::Any {
        return Ok(());
    }
    Err(Error::Backend {
        backend: backend.to_owned(),
        error: PluginError::invalid_argument(
            "--fenced does not combine with --if-version or --if-absent: a fenced write is \
             already conditional on the document's version and token",
        ),
    })
}

/// Adds one to the decimal counter at `key` (absent counts as 0); returns the new value.
async fn increment(storage: &StorageHandle, key: &DocumentKey) -> Result<u64, Error> {
    let done = read_modify_write(storage, key, &contention_policy(), |doc| {
        let current = match doc {
            None => 0,
            Some(doc) => std::str::from_utf8(doc.value.as_slice())
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or_else(|| Error::Backend {
                    backend: storage.name().to_owned(),
                    error: PluginError::invalid_argument(format!(
                        "document {key} does not hold a decimal counter"
                    )),
                })?,
        };
        let next = current + 1;
        Ok(Update::Put(next.to_string().into_bytes(), next))
    })
    .await?;
    Ok(done.value)
}
