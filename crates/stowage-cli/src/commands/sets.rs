//! `stowage credentials …` and `stowage parameters …`: CNAB credential and parameter sets
//! kept in the storage backend (see `stowage_cnab::store` for the layout).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use stowage_cnab::{SetKind, SetStore, Source, StoredSet, ValueSet, namespace_words};
use stowage_host::Stowage;

use super::CmdResult;
use crate::exit;
use crate::outln;
use crate::output::{self, Output};

/// Which storage backend and namespace a command works in.
#[derive(Args, Debug)]
pub struct Scope {
    /// The namespace (default: the global namespace, empty).
    #[arg(long, short = 'n', default_value = "")]
    namespace: String,
    /// The storage backend (default: `default-storage` from the config).
    #[arg(long, short = 'b')]
    backend: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum SetsCommand {
    /// Create or replace sets from YAML or JSON files. Every file is checked before any is
    /// stored; a set changed by someone else during the apply is a conflict (exit 4).
    Apply {
        /// Set files (`.yaml`, `.yml` or `.json`; otherwise guessed from the content).
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Store the sets in this namespace instead of the one their files name.
        #[arg(long, short = 'n')]
        namespace: Option<String>,
        /// The storage backend (default: `default-storage` from the config).
        #[arg(long, short = 'b')]
        backend: Option<String>,
    },
    /// List the sets of a namespace.
    List {
        #[command(flatten)]
        scope: Scope,
        /// Only sets with this label (repeat for several; all must match).
        #[arg(long = "label", short = 'l', value_name = "KEY=VALUE", value_parser = parse_label)]
        labels: Vec<(String, String)>,
    },
    /// Show a set. `value` sources are hidden unless --reveal.
    Show {
        /// The set's name.
        name: String,
        #[command(flatten)]
        scope: Scope,
        /// Show `value` sources (the value is written in the set itself).
        #[arg(long)]
        reveal: bool,
    },
    /// Resolve every entry of a set now (`env`, `path`, `command`, `value` in this process;
    /// `secret: KEY` from the default secrets backend, `secret: BACKEND:KEY` from BACKEND),
    /// one batch per secrets backend. Values are hidden unless --reveal; any entry that
    /// fails is reported with every other failure, and the exit code is not 0 (3 when
    /// they are all missing).
    Resolve {
        /// The set's name.
        name: String,
        #[command(flatten)]
        scope: Scope,
        /// Print the values (text as is; other bytes as `base64:…`).
        #[arg(long)]
        reveal: bool,
        /// Check the set against this bundle.json and resolve only what --action uses:
        /// missing required entries, names the bundle does not know and (parameters)
        /// values that break their JSON Schema definition are reported with any
        /// resolution failure (exit 7); parameter defaults are listed.
        #[arg(long, value_name = "FILE", requires = "action")]
        bundle: Option<PathBuf>,
        /// The action (`install`, `upgrade`, `uninstall`, or a custom one), with --bundle.
        #[arg(long, requires = "bundle")]
        action: Option<String>,
    },
    /// Edit a set in $VISUAL or $EDITOR (as YAML). The edit is checked before it is
    /// stored, and stored only if nobody changed the set meanwhile (else exit 4).
    Edit {
        /// The set's name.
        name: String,
        #[command(flatten)]
        scope: Scope,
    },
    /// Delete a set.
    Delete {
        /// The set's name.
        name: String,
        #[command(flatten)]
        scope: Scope,
    },
}

impl SetsCommand {
    /// Whether the command changes stored data.
    pub fn writes(&self) -> bool {
        matches!(
            self,
            SetsCommand::Apply { .. } | SetsCommand::Edit { .. } | SetsCommand::Delete { .. }
        )
    }
}

pub(super) fn parse_label(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got `{text}`")),
    }
}

pub async fn run(kind: SetKind, cmd: SetsCommand, stowage: &Stowage, out: Output) -> CmdResult {
    let result = match cmd {
        SetsCommand::Apply {
            files,
            namespace,
            backend,
        } => apply(kind, &files, namespace, backend.as_deref(), stowage, out).await,
        SetsCommand::List { scope, labels } => {
            let sets = store(kind, &scope.backend, stowage)?;
            let found = sets.list(&scope.namespace, &labels).await;
            found.map(|found| print_list(&found, out))
        }
        SetsCommand::Show {
            name,
            scope,
            reveal,
        } => {
            let sets = store(kind, &scope.backend, stowage)?;
            let found = sets.get(&scope.namespace, &name).await;
            found.map(|stored| print_set(&stored, reveal, out))
        }
        SetsCommand::Resolve {
            name,
            scope,
            reveal,
            bundle,
            action,
        } => {
            let bundle = match bundle
                .map(|path| stowage_cnab::Bundle::read(&path))
                .transpose()
            {
                Ok(bundle) => bundle,
                Err(e) => return fail(e.into(), out),
            };
            let sets = store(kind, &scope.backend, stowage)?;
            match sets.get(&scope.namespace, &name).await {
                Ok(stored) => {
                    let against = bundle.as_ref().zip(action.as_deref());
                    return super::sets_resolve::run(&stored.set, against, stowage, reveal, out)
                        .await;
                }
                Err(e) => Err(e),
            }
        }
        SetsCommand::Edit { name, scope } => {
            super::sets_edit::run(
                kind,
                &name,
                &scope.namespace,
                scope.backend.as_deref(),
                stowage,
            )
            .await
        }
        SetsCommand::Delete { name, scope } => {
            let sets = store(kind, &scope.backend, stowage)?;
            let deleted = sets.delete(&scope.namespace, &name).await;
            deleted.map(|()| {
                if out == Output::Json {
                    output::json(&serde_json::json!({
                        "name": name, "namespace": scope.namespace, "deleted": true,
                    }));
                } else {
                    eprintln!(
                        "deleted {} `{name}` from {}",
                        kind.set_words(),
                        namespace_words(&scope.namespace)
                    );
                }
            })
        }
    };
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => fail(e, out),
    }
}

fn store(
    kind: SetKind,
    backend: &Option<String>,
    stowage: &Stowage,
) -> Result<SetStore, stowage_host::Error> {
    Ok(SetStore::new(stowage.storage(backend.as_deref())?, kind))
}

/// Checks every file first, so that one bad file stores nothing; then applies each set in
/// order, stopping at the first failure (the sets before it stay applied, and were
/// printed).
async fn apply(
    kind: SetKind,
    files: &[PathBuf],
    namespace: Option<String>,
    backend: Option<&str>,
    stowage: &Stowage,
    out: Output,
) -> Result<(), stowage_cnab::Error> {
    let mut sets = Vec::with_capacity(files.len());
    let mut problems = Vec::new();
    for file in files {
        match stowage_cnab::read_file(file, kind) {
            Ok(mut set) => {
                if let Some(ns) = &namespace {
                    set.namespace = ns.clone();
                }
                sets.push(set);
            }
            Err(e) => problems.push(e),
        }
    }
    match problems.len() {
        0 => {}
        1 => return Err(problems.swap_remove(0).into()),
        _ => return Err(stowage_cnab::Error::Files(problems)),
    }
    let store = SetStore::new(stowage.storage(backend)?, kind);
    let mut results = Vec::new();
    for set in sets {
        let applied = match store.apply(set).await {
            Ok(applied) => applied,
            Err(e) => {
                if out == Output::Json && !results.is_empty() {
                    output::json(&serde_json::Value::Array(results));
                }
                return Err(e);
            }
        };
        let set = &applied.stored.set;
        if out == Output::Json {
            results.push(serde_json::json!({
                "name": set.name,
                "namespace": set.namespace,
                "outcome": applied.outcome.as_str(),
                "version": applied.stored.version,
                "previous_version": applied.previous_version,
            }));
        } else {
            outln!(
                "{} `{}` in {}: {} (version {})",
                kind.set_words(),
                set.name,
                namespace_words(&set.namespace),
                applied.outcome.as_str(),
                applied.stored.version
            );
        }
    }
    if out == Output::Json {
        output::json(&serde_json::Value::Array(results));
    }
    Ok(())
}

fn print_list(found: &[StoredSet], out: Output) {
    if out == Output::Json {
        let sets = found.iter().map(|s| masked_json(&s.set, false)).collect();
        output::json(&serde_json::Value::Array(sets));
        return;
    }
    let rows: Vec<Vec<String>> = found
        .iter()
        .map(|s| {
            vec![
                s.set.name.clone(),
                s.set.entries.len().to_string(),
                labels_text(&s.set),
                s.set.modified.clone().unwrap_or_default(),
            ]
        })
        .collect();
    output::table(&["NAME", "ENTRIES", "LABELS", "MODIFIED"], &rows);
}

fn labels_text(set: &ValueSet) -> String {
    set.labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The set in its file format, with `value` sources replaced by null unless `reveal`
/// (null, not a placeholder, so that applying a masked copy fails instead of storing the
/// placeholder as the value).
fn masked_json(set: &ValueSet, reveal: bool) -> serde_json::Value {
    let mut json = set.to_json();
    if !reveal
        && let Some(entries) = json
            .get_mut(set.kind.collection())
            .and_then(|v| v.as_array_mut())
    {
        for entry in entries {
            if let Some(value) = entry.pointer_mut("/source/value") {
                *value = serde_json::Value::Null;
            }
        }
    }
    json
}

fn print_set(stored: &StoredSet, reveal: bool, out: Output) {
    let set = &stored.set;
    if out == Output::Json {
        output::json(&masked_json(set, reveal));
        return;
    }
    let namespace = if set.namespace.is_empty() {
        "(global)"
    } else {
        &set.namespace
    };
    outln!("Name:       {}", set.name);
    outln!("Namespace:  {namespace}");
    outln!(
        "Schema:     {} {}",
        set.kind.schema_type(),
        set.schema_version
    );
    outln!("Labels:     {}", labels_text(set));
    outln!("Created:    {}", set.created.as_deref().unwrap_or("-"));
    outln!("Modified:   {}", set.modified.as_deref().unwrap_or("-"));
    outln!("Version:    {}", stored.version);
    outln!();
    let rows: Vec<Vec<String>> = set
        .entries
        .iter()
        .map(|e| {
            let shown = match &e.source {
                Source::Value(v) if !reveal => format!("<hidden, {} bytes>", v.len()),
                other => other.text().to_owned(),
            };
            vec![e.name.clone(), e.source.kind().to_owned(), shown]
        })
        .collect();
    output::table(&["NAME", "SOURCE", "FROM"], &rows);
}

/// Reports a set command's error (as `exit::report` does for the host's) and gives the
/// exit code: an invalid set file is a refusal (7), like an invalid argument.
fn fail(e: stowage_cnab::Error, out: Output) -> CmdResult {
    use stowage_cnab::Error as E;
    let e = match e {
        E::Backend(e) => return Err(e),
        other => other,
    };
    let (code, name) = match &e {
        E::File(_) | E::Files(_) => (exit::REFUSED, "invalid_argument"),
        E::NotFound { .. } => (exit::NOT_FOUND, "not_found"),
        E::Conflict { .. } => (exit::CONFLICT, "conflict"),
        _ => (exit::FAILURE, "internal"),
    };
    match out {
        Output::Text => eprintln!("error: {e}"),
        Output::Json => eprintln!(
            "{}",
            serde_json::json!({
                "error": { "code": name, "message": e.to_string(), "exit_code": code }
            })
        ),
    }
    Ok(ExitCode::from(code))
}
