//! `stowage storage …`

use std::path::PathBuf;
use std::process::ExitCode;

use base64::Engine as _;
use clap::{Args, Subcommand};
use stowage_host::Stowage;
use stowage_host::protocol::{CountQuery, DocumentKey, ListQuery, Precondition};

use super::{CmdResult, io_err};
use crate::output::{self, Output};

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
            StorageCommand::Put { .. } | StorageCommand::Delete { .. }
        )
    }
}

pub async fn run(cmd: StorageCommand, stowage: &Stowage, out: Output) -> CmdResult {
    match cmd {
        StorageCommand::Get {
            target,
            name,
            out: file,
        } => {
            let storage = stowage.storage(target.backend.as_deref())?;
            let key = DocumentKey::new(target.collection, target.group, name);
            let doc = storage.get(&key).await?;
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
            let version = storage.put(&key, value, precondition).await?;
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
        } => {
            let storage = stowage.storage(target.backend.as_deref())?;
            let key = DocumentKey::new(target.collection, target.group, name);
            let precondition = if_version.map_or(Precondition::Any, Precondition::Version);
            storage.delete(&key, precondition).await?;
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
