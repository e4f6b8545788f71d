//! `stowage installations …`, `stowage runs …` and `stowage outputs …`: reading (and
//! deleting) the installation state `stowage exec --installation` records. The layout is
//! `stowage_cnab::state::StateStore`'s.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::{Value, json};
use stowage_cnab::state::{
    ClaimResult, InstallationRef, OutputRecord, SecretLocation, StateError, StateStore,
};
use stowage_host::Stowage;
use stowage_host::protocol::SecretRef;

use super::CmdResult;
use super::exec_installation::state_failure;
use crate::output::{self, Output};

/// Where the state is.
#[derive(Args, Debug)]
pub struct StateScope {
    /// The namespace of an installation given as NAME (default: the global namespace).
    #[arg(long, short = 'n', default_value = "")]
    namespace: String,
    /// The storage backend (default: `default-storage`).
    #[arg(long, short = 'b')]
    backend: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum InstallationsCommand {
    /// List the installations of a namespace, with their latest run.
    List {
        #[command(flatten)]
        scope: StateScope,
        /// Only installations with this label (repeat for several; all must match).
        #[arg(long = "label", short = 'l', value_name = "KEY=VALUE", value_parser = super::sets::parse_label)]
        labels: Vec<(String, String)>,
    },
    /// Show an installation and its runs.
    Show {
        /// NS/NAME, or NAME in -n's namespace.
        installation: String,
        #[command(flatten)]
        scope: StateScope,
    },
    /// Delete an installation's records: the installation, its claims, results and
    /// outputs (not what it installed).
    Delete {
        /// NS/NAME, or NAME in -n's namespace.
        installation: String,
        #[command(flatten)]
        scope: StateScope,
        /// Also delete the sensitive parameter and output values its records refer to.
        #[arg(long)]
        purge_secrets: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum RunsCommand {
    /// An installation's runs (claims and their latest result), oldest first.
    List {
        /// NS/NAME, or NAME in -n's namespace.
        installation: String,
        #[command(flatten)]
        scope: StateScope,
    },
    /// One run: its claim (sensitive parameters as references) and every result.
    Show {
        /// The run's (claim's) id.
        id: String,
        #[command(flatten)]
        scope: StateScope,
        /// Read the sensitive parameters' values from the secrets backend and print them.
        #[arg(long)]
        reveal: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum OutputsCommand {
    /// The latest value of each of an installation's outputs (sensitive ones hidden).
    List {
        /// NS/NAME, or NAME in -n's namespace.
        installation: String,
        #[command(flatten)]
        scope: StateScope,
    },
    /// One output's latest value; a sensitive one only with --reveal.
    Show {
        /// NS/NAME, or NAME in -n's namespace.
        installation: String,
        /// The output's name.
        #[arg(value_name = "OUTPUT")]
        name: String,
        #[command(flatten)]
        scope: StateScope,
        /// Print a sensitive value (read from the secrets backend).
        #[arg(long)]
        reveal: bool,
    },
}

impl InstallationsCommand {
    /// Whether the command changes stored data.
    pub fn writes(&self) -> bool {
        matches!(self, InstallationsCommand::Delete { .. })
    }
}

fn open(scope: &StateScope, stowage: &Stowage) -> Result<StateStore, stowage_host::Error> {
    Ok(StateStore::new(stowage.storage(scope.backend.as_deref())?))
}

fn parse(text: &str, scope: &StateScope) -> Result<InstallationRef, StateError> {
    InstallationRef::parse(text, &scope.namespace).map_err(StateError::Refused)
}

fn done(result: Result<(), StateError>) -> CmdResult {
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(StateError::Backend(e)) => Err(e),
        Err(e) => Ok(state_failure(&e)),
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

pub async fn installations(cmd: InstallationsCommand, stowage: &Stowage, out: Output) -> CmdResult {
    let result = async {
        match cmd {
            InstallationsCommand::List { scope, labels } => {
                let found = open(&scope, stowage)?
                    .installations(&scope.namespace, &labels)
                    .await?;
                if out == Output::Json {
                    output::json(&Value::Array(found.iter().map(to_json).collect()));
                    return Ok(());
                }
                let rows: Vec<Vec<String>> = found
                    .iter()
                    .map(|i| {
                        vec![
                            i.name.clone(),
                            format!("{} {}", i.bundle_name, i.bundle_version).trim().to_owned(),
                            i.status.action.clone(),
                            i.status
                                .result_status
                                .map_or("-", |s| s.as_str())
                                .to_owned(),
                            i.modified.clone(),
                        ]
                    })
                    .collect();
                output::table(&["NAME", "BUNDLE", "LAST ACTION", "STATUS", "MODIFIED"], &rows);
                Ok(())
            }
            InstallationsCommand::Show {
                installation,
                scope,
            } => {
                let at = parse(&installation, &scope)?;
                let state = open(&scope, stowage)?;
                let (inst, _) = state.existing(&at).await?;
                let runs = runs_of(&state, &at).await?;
                if out == Output::Json {
                    let mut doc = to_json(&inst);
                    doc["runs"] = Value::Array(runs.iter().map(run_json).collect());
                    output::json(&doc);
                    return Ok(());
                }
                crate::outln!("installation: {at}");
                crate::outln!("bundle:       {} {} ({})", inst.bundle_name, inst.bundle_version, inst.bundle_repository);
                crate::outln!("created:      {}", inst.created);
                crate::outln!("modified:     {}", inst.modified);
                crate::outln!("revision:     {}", inst.status.revision);
                if let Some(t) = &inst.status.installed {
                    crate::outln!("installed:    {t}");
                }
                if let Some(t) = &inst.status.uninstalled {
                    crate::outln!("uninstalled:  {t}");
                }
                for (k, v) in &inst.labels {
                    crate::outln!("label:        {k}={v}");
                }
                crate::outln!();
                print_runs(&runs);
                Ok(())
            }
            InstallationsCommand::Delete {
                installation,
                scope,
                purge_secrets,
            } => {
                let at = parse(&installation, &scope)?;
                let deleted = open(&scope, stowage)?.delete_installation(&at).await?;
                let mut purged = 0;
                if purge_secrets {
                    for location in &deleted.secrets {
                        let secrets = stowage.secrets(Some(&location.backend))?;
                        match secrets.delete(&location.key).await {
                            Ok(()) => purged += 1,
                            Err(e) if e.code() == stowage_host::protocol::ErrorCode::NotFound => {}
                            Err(e) => return Err(e.into()),
                        }
                    }
                }
                if out == Output::Json {
                    output::json(&json!({
                        "installation": at.to_string(),
                        "deleted": deleted.documents,
                        "secretsPurged": purged,
                        "secretsKept": if purge_secrets { 0 } else { deleted.secrets.len() },
                    }));
                } else {
                    eprintln!("deleted installation {at} ({} records)", deleted.documents);
                    if purge_secrets {
                        eprintln!("deleted {purged} sensitive values it referred to");
                    } else if !deleted.secrets.is_empty() {
                        eprintln!(
                            "kept {} sensitive values it referred to (--purge-secrets deletes them)",
                            deleted.secrets.len()
                        );
                    }
                }
                Ok(())
            }
        }
    }
    .await;
    done(result)
}

/// Each claim with its results, oldest first.
async fn runs_of(
    state: &StateStore,
    at: &InstallationRef,
) -> Result<Vec<(stowage_cnab::state::Claim, Vec<ClaimResult>)>, StateError> {
    let claims = state.claims(at).await?;
    let mut results = state.results(at).await?;
    Ok(claims
        .into_iter()
        .map(|c| {
            let mine: Vec<ClaimResult> = results.extract_if(.., |r| r.claim_id == c.id).collect();
            (c, mine)
        })
        .collect())
}

fn run_json((claim, results): &(stowage_cnab::state::Claim, Vec<ClaimResult>)) -> Value {
    json!({
        "id": claim.id,
        "action": claim.action,
        "revision": claim.revision,
        "created": claim.created,
        "status": results.last().map(|r| r.status.as_str()),
        "results": results.iter().map(to_json).collect::<Vec<_>>(),
    })
}

fn print_runs(runs: &[(stowage_cnab::state::Claim, Vec<ClaimResult>)]) {
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|(c, results)| {
            let last = results.last();
            vec![
                c.id.clone(),
                c.action.clone(),
                last.map_or("-", |r| r.status.as_str()).to_owned(),
                c.created.clone(),
                last.map(|r| r.message.clone()).unwrap_or_default(),
            ]
        })
        .collect();
    output::table(&["RUN", "ACTION", "STATUS", "STARTED", "MESSAGE"], &rows);
}

pub async fn runs(cmd: RunsCommand, stowage: &Stowage, out: Output) -> CmdResult {
    let result = async {
        match cmd {
            RunsCommand::List {
                installation,
                scope,
            } => {
                let at = parse(&installation, &scope)?;
                let state = open(&scope, stowage)?;
                state.existing(&at).await?;
                let runs = runs_of(&state, &at).await?;
                if out == Output::Json {
                    output::json(&Value::Array(runs.iter().map(run_json).collect()));
                } else {
                    print_runs(&runs);
                }
                Ok(())
            }
            RunsCommand::Show { id, scope, reveal } => {
                let state = open(&scope, stowage)?;
                let claim = state.claim_by_id(&id).await?;
                let results = state.results_of(&claim).await?;
                let mut revealed = std::collections::BTreeMap::new();
                if reveal {
                    for (name, location) in &claim.sensitive_parameters {
                        let value = read_secret(stowage, location).await?;
                        revealed.insert(name.clone(), String::from_utf8_lossy(&value).into_owned());
                    }
                }
                if out == Output::Json {
                    let mut doc = to_json(&claim);
                    doc["results"] = Value::Array(results.iter().map(to_json).collect());
                    if reveal {
                        doc["revealedParameters"] = to_json(&revealed);
                    }
                    output::json(&doc);
                    return Ok(());
                }
                let at = InstallationRef::new(&claim.namespace, &claim.installation);
                crate::outln!("run:          {}", claim.id);
                crate::outln!("installation: {at}");
                crate::outln!("action:       {}", claim.action);
                crate::outln!("revision:     {}", claim.revision);
                crate::outln!(
                    "bundle:       {} ({})",
                    claim.bundle_reference,
                    claim.bundle_digest
                );
                crate::outln!("created:      {}", claim.created);
                for (name, value) in &claim.parameters {
                    crate::outln!("parameter:    {name} = {value}");
                }
                for (name, location) in &claim.sensitive_parameters {
                    match revealed.get(name) {
                        Some(value) => crate::outln!("parameter:    {name} = {value} (sensitive)"),
                        None => crate::outln!("parameter:    {name} = (sensitive, in {location})"),
                    }
                }
                for r in &results {
                    crate::outln!(
                        "result:       {} {} {}{}",
                        r.created,
                        r.status.as_str(),
                        r.id,
                        if r.message.is_empty() {
                            String::new()
                        } else {
                            format!(": {}", r.message)
                        }
                    );
                    for (name, meta) in &r.outputs {
                        crate::outln!("  output:     {name} {}", meta.content_digest);
                    }
                }
                Ok(())
            }
        }
    }
    .await;
    done(result)
}

pub async fn outputs(cmd: OutputsCommand, stowage: &Stowage, out: Output) -> CmdResult {
    let result = async {
        match cmd {
            OutputsCommand::List {
                installation,
                scope,
            } => {
                let at = parse(&installation, &scope)?;
                let state = open(&scope, stowage)?;
                state.existing(&at).await?;
                let latest = state.latest_outputs(&at).await?;
                if out == Output::Json {
                    output::json(&Value::Array(latest.values().map(to_json).collect()));
                    return Ok(());
                }
                let rows: Vec<Vec<String>> = latest
                    .values()
                    .map(|o| {
                        vec![
                            o.name.clone(),
                            shown(o),
                            o.result_id.clone(),
                            o.created.clone(),
                        ]
                    })
                    .collect();
                output::table(&["NAME", "VALUE", "RESULT", "CREATED"], &rows);
                Ok(())
            }
            OutputsCommand::Show {
                installation,
                name,
                scope,
                reveal,
            } => {
                let at = parse(&installation, &scope)?;
                let state = open(&scope, stowage)?;
                state.existing(&at).await?;
                let latest = state.latest_outputs(&at).await?;
                let record = latest.get(&name).ok_or_else(|| {
                    StateError::NotFound(format!("output `{name}` of installation {at}"))
                })?;
                let value = match (&record.secret, reveal) {
                    (Some(location), true) => Some(read_secret(stowage, location).await?),
                    (Some(_), false) => None,
                    (None, _) => Some(plain_value(record)),
                };
                if out == Output::Json {
                    let mut doc = to_json(record);
                    if let Some(v) = &value {
                        doc["value"] = Value::String(String::from_utf8_lossy(v).into_owned());
                    }
                    output::json(&doc);
                    return Ok(());
                }
                match value {
                    Some(v) => output::raw(&v),
                    None => {
                        return Err(StateError::Refused(format!(
                            "output `{name}` is sensitive (kept in {}); add --reveal to print it",
                            record.secret.as_ref().expect("sensitive")
                        )));
                    }
                }
                Ok(())
            }
        }
    }
    .await;
    done(result)
}

/// The value column of `outputs list`.
fn shown(o: &OutputRecord) -> String {
    if let Some(location) = &o.secret {
        return format!("(sensitive, in {location})");
    }
    match (&o.value, &o.value_base64) {
        (Some(text), _) => {
            let line = text.lines().next().unwrap_or_default();
            let mut short: String = line.chars().take(40).collect();
            if short.len() < text.trim_end().len() {
                short.push('…');
            }
            short
        }
        (None, Some(_)) => "(binary)".to_owned(),
        _ => String::new(),
    }
}

fn plain_value(o: &OutputRecord) -> Vec<u8> {
    use base64::Engine as _;
    match (&o.value, &o.value_base64) {
        (Some(text), _) => text.clone().into_bytes(),
        (None, Some(b64)) => base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

async fn read_secret(stowage: &Stowage, location: &SecretLocation) -> Result<Vec<u8>, StateError> {
    let secrets = stowage.secrets(Some(&location.backend))?;
    let value = secrets.resolve_one(&SecretRef::new(&location.key)).await?;
    Ok(value.expose().to_vec())
}
