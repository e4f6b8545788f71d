//! `stowage plugins test`: the conformance kit from the command line.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use stowage_host::conformance::{self, CaseResult, Outcome};
use stowage_host::launcher::{self, PluginBackend};
use stowage_host::process::PluginCommand;
use stowage_host::protocol::Role;
use stowage_host::{
    BackendKind, BackendSpec, BuiltinKind, SecretsHandle, StorageHandle, Stowage, discovery,
};

use super::CmdResult;
use crate::output::{self, Output};

/// One kept-alive process serves all data cases, so in-memory plugins can pass.
const KEEP_ALIVE: Duration = Duration::from_secs(60);
const TIMEOUT: Duration = Duration::from_secs(30);

/// What is under test for one role.
struct RoleTarget {
    role: Role,
    config_json: String,
    spec: Option<BackendSpec>,
}

fn config_json(spec: &BackendSpec) -> String {
    serde_json::to_string(&spec.settings.0).unwrap_or_else(|_| "{}".into())
}

pub async fn run(target: String, only: Option<Role>, stowage: &Stowage, out: Output) -> CmdResult {
    let config = stowage.config();
    let by_name: Vec<&BackendSpec> = config
        .storage
        .get(&target)
        .into_iter()
        .chain(config.secrets.get(&target))
        .filter(|s| only.is_none_or(|r| r == s.role))
        .collect();

    let mut results: Vec<CaseResult> = Vec::new();
    let mut program: Option<PluginCommand> = None;
    let mut roles: Vec<RoleTarget> = Vec::new();

    if !by_name.is_empty() {
        // A configured backend: its own config, and its plugin if it has one.
        for spec in by_name {
            if !matches!(spec.kind, BackendKind::Builtin(_)) && program.is_none() {
                program = Some(PluginCommand {
                    backend: spec.name.clone(),
                    program: discovery::program_for(config, spec)?,
                    args: spec.args.clone(),
                    env: spec.env.clone(),
                });
            }
            roles.push(RoleTarget {
                role: spec.role,
                config_json: config_json(spec),
                spec: Some(spec.clone()),
            });
        }
    } else {
        // A plugin by name or path: roles from what it declares; config from a backend
        // that uses it, if the config has one, else empty.
        let (name, path) = discovery::locate_plugin(config, &target)?;
        let command = PluginCommand {
            backend: format!("plugin:{name}"),
            program: path.clone(),
            args: Vec::new(),
            env: Default::default(),
        };
        let (info, _) = launcher::describe(&command, TIMEOUT).await?;
        let caps = conformance::parse_capabilities(&info.capabilities);
        for role in conformance::roles_of(&caps) {
            if only.is_some_and(|r| r != role) {
                continue;
            }
            let spec = config
                .storage
                .values()
                .chain(config.secrets.values())
                .find(|s| {
                    s.role == role
                        && (s.kind == BackendKind::Plugin(name.clone())
                            || s.kind == BackendKind::Path(path.clone()))
                });
            roles.push(RoleTarget {
                role,
                config_json: spec.map(config_json).unwrap_or_else(|| "{}".into()),
                spec: spec.cloned(),
            });
        }
        program = Some(command);
    }

    if let (Some(command), Some(first)) = (&program, roles.first()) {
        results
            .extend(conformance::run_process_cases(command, first.role, &first.config_json).await);
    }

    for target_role in &roles {
        let builtin = target_role.spec.as_ref().and_then(|s| match s.kind {
            BackendKind::Builtin(b) => Some(b),
            _ => None,
        });
        match target_role.role {
            Role::Storage => {
                let handle = match (builtin, &program) {
                    (Some(_), _) => {
                        stowage.storage(target_role.spec.as_ref().map(|s| s.name.as_str()))?
                    }
                    (None, Some(command)) => StorageHandle::plugin(
                        &command.backend,
                        Arc::new(PluginBackend::new(
                            command.clone(),
                            Role::Storage,
                            target_role.config_json.clone(),
                            TIMEOUT,
                            Some(KEEP_ALIVE),
                        )),
                    ),
                    (None, None) => continue,
                };
                let caps = conformance::parse_capabilities(&handle.info().await?.capabilities);
                results.extend(conformance::run_storage_cases(&handle, &caps).await);
                if let Some(p) = handle.plugin_backend() {
                    p.shutdown().await;
                }
            }
            Role::Secrets => {
                let handle = match (builtin, &program) {
                    (Some(_), _) => {
                        stowage.secrets(target_role.spec.as_ref().map(|s| s.name.as_str()))?
                    }
                    (None, Some(command)) => SecretsHandle::plugin(
                        &command.backend,
                        Arc::new(PluginBackend::new(
                            command.clone(),
                            Role::Secrets,
                            target_role.config_json.clone(),
                            TIMEOUT,
                            Some(KEEP_ALIVE),
                        )),
                    ),
                    (None, None) => continue,
                };
                let caps = conformance::parse_capabilities(&handle.info().await?.capabilities);
                let missing = (builtin == Some(BuiltinKind::HostSecrets))
                    .then_some("env:STOWAGE_CONFORMANCE_SURELY_UNSET");
                results.extend(conformance::run_secrets_cases(&handle, &caps, missing).await);
                if let Some(p) = handle.plugin_backend() {
                    p.shutdown().await;
                }
            }
        }
    }

    report(&target, &results, out);
    if results.iter().any(CaseResult::failed) {
        return Ok(ExitCode::from(crate::exit::PLUGIN));
    }
    Ok(ExitCode::SUCCESS)
}

fn report(target: &str, results: &[CaseResult], out: Output) {
    let passed = results
        .iter()
        .filter(|r| r.outcome == Outcome::Pass)
        .count();
    let failed = results.iter().filter(|r| r.failed()).count();
    let skipped = results.len() - passed - failed;
    match out {
        Output::Json => output::json(&serde_json::json!({
            "target": target,
            "passed": passed, "failed": failed, "skipped": skipped,
            "cases": results.iter().map(|r| {
                let (status, reason) = match &r.outcome {
                    Outcome::Pass => ("pass", None),
                    Outcome::Fail(why) => ("fail", Some(why.clone())),
                    Outcome::Skip(why) => ("skip", Some(why.clone())),
                };
                serde_json::json!({ "case": r.name, "status": status, "reason": reason, "ms": r.duration.as_millis() as u64 })
            }).collect::<Vec<_>>(),
        })),
        Output::Text => {
            crate::outln!("conformance of {target}:");
            for r in results {
                let ms = r.duration.as_millis();
                match &r.outcome {
                    Outcome::Pass => crate::outln!("  PASS  {} ({ms} ms)", r.name),
                    Outcome::Fail(why) => crate::outln!("  FAIL  {}: {why}", r.name),
                    Outcome::Skip(why) => crate::outln!("  SKIP  {}: {why}", r.name),
                }
            }
            crate::outln!("conformance: {passed} passed, {failed} failed, {skipped} skipped");
        }
    }
}
