//! The conformance kit: a suite any plugin binary (or built-in backend) must pass.
//!
//! [`run`] is the one entry point, used by `stowage plugins test`, the workspace tests and
//! every plugin's tests. Process cases (handshake, protocol, broken frames, and the
//! arguments a plugin must refuse itself) drive a plugin binary directly, frame by frame,
//! as a plugin in any language would be driven, since the host's own client would not
//! send what they test. Data cases (storage, secrets) go through one kept-alive plugin
//! process, so in-memory plugins can pass them too; they use a fresh collection group /
//! key prefix per run and clean up after themselves.

mod process;
mod secrets;
mod storage;

use std::future::Future;
use std::time::{Duration, Instant};

use stowage_host::{PluginCommand, PluginOptions, SecretsHandle, StorageHandle};
use stowage_protocol::{Capability, Role};

/// What the kit runs against.
pub enum Target {
    /// A plugin binary: the process cases, then the data cases of the role through one
    /// kept-alive process configured with the given config.
    Plugin(PluginCommand),
    /// A storage backend already open (a built-in, a configured backend): data cases.
    Storage(StorageHandle),
    /// A secrets backend already open. `missing` names a key that surely does not exist
    /// where the backend cannot create one (the read-only `host` backend).
    Secrets(SecretsHandle, Option<String>),
}

/// How long each data call of the kit may take.
const DATA_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs every case that applies to `target` in `role`; `config_json` is the backend
/// config a plugin gets (ignored for open backends). A target that cannot be configured
/// at all fails the case `<role>.configure` with the reason, and its data cases are not run.
pub async fn run(target: &Target, role: Role, config_json: &str) -> Vec<CaseResult> {
    let mut results = Vec::new();
    match target {
        Target::Plugin(command) => {
            results.extend(process::run_process_cases(command, role, config_json).await);
            let options = PluginOptions {
                timeout: DATA_TIMEOUT,
                keep_alive: Some(DATA_TIMEOUT),
                // The kit checks what the plugin answers, not what retries make of it.
                retries: 0,
            };
            match role {
                Role::Storage => {
                    let handle =
                        StorageHandle::for_plugin(command.clone(), config_json.to_owned(), options);
                    results.extend(storage_cases(&handle).await);
                    handle.shutdown().await;
                }
                Role::Secrets => {
                    let handle =
                        SecretsHandle::for_plugin(command.clone(), config_json.to_owned(), options);
                    results.extend(secrets_cases(&handle, None).await);
                    handle.shutdown().await;
                }
            }
        }
        Target::Storage(handle) => results.extend(storage_cases(handle).await),
        Target::Secrets(handle, missing) => {
            results.extend(secrets_cases(handle, missing.as_deref()).await)
        }
    }
    results
}

/// The name of the case that fails when a role cannot be configured.
pub fn configure_case(role: Role) -> String {
    format!("{role}.configure")
}

fn not_configured(role: Role, started: Instant, e: stowage_host::Error) -> Vec<CaseResult> {
    vec![CaseResult {
        name: configure_case(role),
        outcome: Outcome::Fail(e.to_string()),
        duration: started.elapsed(),
    }]
}

async fn storage_cases(handle: &StorageHandle) -> Vec<CaseResult> {
    let started = Instant::now();
    match handle.info().await {
        Ok(info) => {
            let caps = parse_capabilities(&info.capabilities);
            storage::run_storage_cases(handle, &caps).await
        }
        Err(e) => not_configured(Role::Storage, started, e),
    }
}

async fn secrets_cases(handle: &SecretsHandle, missing: Option<&str>) -> Vec<CaseResult> {
    let started = Instant::now();
    match handle.info().await {
        Ok(info) => {
            let caps = parse_capabilities(&info.capabilities);
            secrets::run_secrets_cases(handle, &caps, missing).await
        }
        Err(e) => not_configured(Role::Secrets, started, e),
    }
}

/// Every failed case as `name: reason`, one per line; empty when all passed or skipped.
pub fn failures(results: &[CaseResult]) -> Vec<String> {
    results
        .iter()
        .filter_map(|r| match &r.outcome {
            Outcome::Fail(why) => Some(format!("{}: {why}", r.name)),
            _ => None,
        })
        .collect()
}

/// How many cases passed.
pub fn passed(results: &[CaseResult]) -> usize {
    results
        .iter()
        .filter(|r| r.outcome == Outcome::Pass)
        .count()
}

/// How one case ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It passed.
    Pass,
    /// It failed, with the reason.
    Fail(String),
    /// It did not apply (a capability the plugin does not declare), with the reason.
    Skip(String),
}

/// One case's result.
#[derive(Clone, Debug)]
pub struct CaseResult {
    /// `handshake.no_cookie`, `storage.pagination`, …
    pub name: String,
    /// How it ended.
    pub outcome: Outcome,
    /// How long it took.
    pub duration: Duration,
}

impl CaseResult {
    /// Whether it failed.
    pub fn failed(&self) -> bool {
        matches!(self.outcome, Outcome::Fail(_))
    }
}

/// Collects case results.
#[derive(Default)]
pub(crate) struct Report {
    pub(crate) cases: Vec<CaseResult>,
}

impl Report {
    /// Runs one case unless a capability it needs is missing.
    pub(crate) async fn case<F, Fut>(
        &mut self,
        name: &str,
        caps: &[Capability],
        needs: &[Capability],
        f: F,
    ) where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(), String>>,
    {
        let started = Instant::now();
        let outcome = match needs.iter().find(|c| !caps.contains(c)) {
            Some(missing) => Outcome::Skip(format!("{missing} not declared")),
            None => match f().await {
                Ok(()) => Outcome::Pass,
                Err(reason) => Outcome::Fail(reason),
            },
        };
        self.cases.push(CaseResult {
            name: name.to_owned(),
            outcome,
            duration: started.elapsed(),
        });
    }
}

/// Checks a condition inside a case.
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}
pub(crate) use ensure;

/// A fresh suffix so runs never see each other's data.
pub(crate) fn run_id() -> String {
    let mut bytes = [0u8; 6];
    let _ = getrandom::fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses declared capability names, ignoring unknown ones.
pub fn parse_capabilities(names: &[String]) -> Vec<Capability> {
    names.iter().filter_map(|n| n.parse().ok()).collect()
}

/// The roles a set of capabilities covers.
pub fn roles_of(caps: &[Capability]) -> Vec<Role> {
    let mut roles = Vec::new();
    if caps.iter().any(|c| c.role() == Role::Storage) {
        roles.push(Role::Storage);
    }
    if caps.iter().any(|c| c.role() == Role::Secrets) {
        roles.push(Role::Secrets);
    }
    roles
}
