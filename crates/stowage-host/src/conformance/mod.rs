//! The conformance kit: a suite any plugin binary (or built-in backend) must pass.
//!
//! `stowage plugins test` runs it and prints one line per case. Data cases (storage,
//! secrets) go through one kept-alive plugin process, so in-memory plugins can pass them
//! too; they use a fresh collection group / key prefix per run and clean up after
//! themselves. Process cases (handshake, protocol) drive the binary directly.

mod process;
mod secrets;
mod storage;

use std::future::Future;
use std::time::{Duration, Instant};

use stowage_protocol::{Capability, Role};

pub use process::run_process_cases;
pub use secrets::run_secrets_cases;
pub use storage::run_storage_cases;

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
#[macro_export]
#[doc(hidden)]
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

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
