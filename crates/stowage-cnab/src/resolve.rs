//! Resolving a set's entries to values, without a bundle.
//!
//! - `env`, `path`, `command` and `value` sources resolve in this process, by the same
//!   code as Stowage's built-in `host` secrets backend, so they follow its rules: `path`
//!   reads the file's bytes (`~/` is the home directory); `command` splits its text like
//!   a shell but runs without one, takes stdout only (one trailing newline trimmed), and
//!   fails on a non-zero exit with the command's stderr (never its stdout).
//! - `secret` sources go to a secrets backend: `secret: BACKEND:KEY` names a configured
//!   secrets backend; text whose part before the first `:` is not a configured backend's
//!   name is a key of the default backend (so `secret: db/password` is the default
//!   backend's `db/password`; a default-backend key that starts with another backend's
//!   name and a colon is written with the default backend's name in front).
//!
//! Every reference bound for one backend goes in one batch call (one plugin process), also
//! across sets ([`resolve_all`], for `stowage exec`), and different backends are called at
//! the same time. Each entry gets its own answer; values are [`SecretBytes`], which
//! zeroize on drop and never print.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use stowage_host::builtin::HostSecrets;
use stowage_host::protocol::{ErrorCode, SecretBytes, SecretRef};
use stowage_host::{SecretsHandle, Stowage};

use crate::set::{Source, ValueSet};

/// How long a `command` source may run.
pub const HOST_SOURCE_TIMEOUT: Duration = Duration::from_secs(30);

/// The in-process batch's name; it has a space, so no configured backend has it.
const HOST_SOURCES: &str = "host sources";

/// Why one entry could not be resolved (never holds the value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryFailure {
    /// The error's kind.
    pub code: ErrorCode,
    /// The error for people.
    pub message: String,
}

/// One entry and its value, or why there is none.
#[derive(Debug)]
pub struct ResolvedEntry {
    /// The credential or parameter name.
    pub name: String,
    /// Where the value came from.
    pub source: Source,
    /// The secrets backend asked, for `secret` sources.
    pub backend: Option<String>,
    /// The value, or why not.
    pub outcome: Result<SecretBytes, EntryFailure>,
}

impl ResolvedEntry {
    /// The source for messages: `env GITHUB_TOKEN`, `secret vault:db/password`; a `value`
    /// source only as `value` (its text is the value).
    pub fn source_words(&self) -> String {
        match &self.source {
            Source::Value(_) => "value".to_owned(),
            other => format!("{} {}", other.kind(), other.text()),
        }
    }
}

/// Every entry of a set, resolved or not, in the set's order.
#[derive(Debug)]
pub struct Resolution {
    /// The entries.
    pub entries: Vec<ResolvedEntry>,
}

impl Resolution {
    /// The entries that failed.
    pub fn failures(&self) -> impl Iterator<Item = (&ResolvedEntry, &EntryFailure)> {
        self.entries
            .iter()
            .filter_map(|e| e.outcome.as_ref().err().map(|f| (e, f)))
    }

    /// One report naming every entry that failed and why; none when all resolved.
    pub fn failure_report(&self, set: &ValueSet) -> Option<String> {
        let failed: Vec<String> = self
            .failures()
            .map(|(e, f)| {
                format!(
                    "  {} `{}` ({}): {}",
                    set.kind.entry_word(),
                    e.name,
                    e.source_words(),
                    f.message
                )
            })
            .collect();
        if failed.is_empty() {
            return None;
        }
        Some(format!(
            "{} of {} {} of {} `{}` could not be resolved:\n{}",
            failed.len(),
            self.entries.len(),
            set.kind.collection(),
            set.kind.set_words(),
            set.name,
            failed.join("\n")
        ))
    }
}

/// Where `secret: TEXT` goes: (backend, key). See the module docs.
pub fn secret_target(text: &str, stowage: &Stowage) -> (String, String) {
    let config = stowage.config();
    if let Some((backend, key)) = text.split_once(':')
        && config.secrets.contains_key(backend)
    {
        return (backend.to_owned(), key.to_owned());
    }
    (config.default_secrets.clone(), text.to_owned())
}

/// A batch for one backend: the entries' positions (set, entry) and their references.
struct Batch {
    handle: Result<SecretsHandle, EntryFailure>,
    positions: Vec<(usize, usize)>,
    refs: Vec<SecretRef>,
}

type Outcome = Result<SecretBytes, EntryFailure>;

/// Resolves every entry of `set`: one batch call per backend, backends in parallel.
pub async fn resolve(set: &ValueSet, stowage: &Stowage) -> Resolution {
    resolve_all(&[set], stowage)
        .await
        .pop()
        .unwrap_or(Resolution {
            entries: Vec::new(),
        })
}

/// Resolves every entry of several sets together (`stowage exec` with credential and
/// parameter sets): still one batch call per backend for all of them, backends in
/// parallel. One resolution per set, in order.
pub async fn resolve_all(sets: &[&ValueSet], stowage: &Stowage) -> Vec<Resolution> {
    let mut outcomes: Vec<Vec<Option<Outcome>>> = sets
        .iter()
        .map(|set| set.entries.iter().map(|_| None).collect())
        .collect();
    let mut backends: Vec<Vec<Option<String>>> = sets
        .iter()
        .map(|set| vec![None; set.entries.len()])
        .collect();
    // The host sources form one in-process batch, under a name that cannot be a
    // configured backend's.
    let mut batches: BTreeMap<String, Batch> = BTreeMap::new();
    for (s, set) in sets.iter().enumerate() {
        for (i, entry) in set.entries.iter().enumerate() {
            let (batch, key) = match &entry.source {
                Source::Value(v) => {
                    outcomes[s][i] = Some(Ok(SecretBytes::from(v.as_str())));
                    continue;
                }
                Source::Secret(text) => {
                    let (backend, key) = secret_target(text, stowage);
                    backends[s][i] = Some(backend.clone());
                    (backend, key)
                }
                host => (String::new(), format!("{}:{}", host.kind(), host.text())),
            };
            let b = batches.entry(batch.clone()).or_insert_with(|| Batch {
                handle: if batch.is_empty() {
                    Ok(host_sources())
                } else {
                    stowage.secrets(Some(&batch)).map_err(failure)
                },
                positions: Vec::new(),
                refs: Vec::new(),
            });
            b.positions.push((s, i));
            b.refs.push(SecretRef::new(key));
        }
    }

    let calls = batches.into_values().map(|batch| async move {
        let answers = match &batch.handle {
            Ok(handle) => handle.resolve(&batch.refs).await.map_err(failure),
            Err(e) => Err(e.clone()),
        };
        (batch.positions, answers)
    });
    for (positions, answers) in futures::future::join_all(calls).await {
        match answers {
            Ok(answers) => {
                for ((s, i), answer) in positions.into_iter().zip(answers) {
                    outcomes[s][i] = Some(answer.map_err(failure));
                }
            }
            // The call itself failed: every entry of the batch fails with it.
            Err(e) => {
                for (s, i) in positions {
                    outcomes[s][i] = Some(Err(e.clone()));
                }
            }
        }
    }

    sets.iter()
        .zip(outcomes)
        .zip(backends)
        .map(|((set, outcomes), backends)| Resolution {
            entries: set
                .entries
                .iter()
                .zip(outcomes)
                .zip(backends)
                .map(|((entry, outcome), backend)| ResolvedEntry {
                    name: entry.name.clone(),
                    source: entry.source.clone(),
                    backend,
                    outcome: outcome.unwrap_or_else(|| {
                        Err(EntryFailure {
                            code: ErrorCode::Internal,
                            message: "no answer".into(),
                        })
                    }),
                })
                .collect(),
        })
        .collect()
}

/// The in-process resolver of host sources: the `host` backend's code, not whatever a
/// config calls `host`.
fn host_sources() -> SecretsHandle {
    SecretsHandle::builtin_with_timeout(
        HOST_SOURCES,
        Arc::new(HostSecrets::new(HOST_SOURCE_TIMEOUT)),
        HOST_SOURCE_TIMEOUT,
    )
}

fn failure(e: stowage_host::Error) -> EntryFailure {
    let message = match &e {
        // The host sources are not a backend the user configured: their own message
        // ("environment variable X is not set") says it all.
        stowage_host::Error::Backend { backend, error } if backend == HOST_SOURCES => {
            error.message.clone()
        }
        other => other.to_string(),
    };
    EntryFailure {
        code: e.code(),
        message,
    }
}
