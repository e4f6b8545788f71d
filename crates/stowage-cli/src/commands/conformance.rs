//! `stowage plugins test`: the conformance kit from the command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use stowage_conformance::{CaseResult, Outcome, Target};
use stowage_host::protocol::Role;
use stowage_host::{
    BackendKind, BackendSpec, BuiltinKind, Error, PluginCommand, Stowage, discovery,
};

use super::CmdResult;
use crate::output::{self, Output};

const DESCRIBE_TIMEOUT: Duration = Duration::from_secs(30);

/// The plugin config given on the command line: a JSON file, then `key=value` overrides.
#[derive(clap::Args, Debug, Default)]
pub struct PluginConfigArgs {
    /// The plugin's config as a JSON object (what `[storage.NAME.config]` holds).
    #[arg(long, value_name = "FILE.json")]
    plugin_config: Option<PathBuf>,
    /// One config key (repeatable); the value is JSON if it parses as JSON, else a string.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
}

impl PluginConfigArgs {
    fn given(&self) -> bool {
        self.plugin_config.is_some() || !self.sets.is_empty()
    }

    /// The config as JSON, starting from `base` (a configured backend's own config).
    fn apply(&self, base: serde_json::Value) -> Result<String, Error> {
        let mut config = base;
        if let Some(path) = &self.plugin_config {
            let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
                context: format!("cannot read {}", path.display()),
                source,
            })?;
            config = serde_json::from_str(&text).map_err(|e| {
                Error::Config(stowage_host::ConfigError {
                    path: Some(path.clone()),
                    line: Some(e.line()),
                    key: None,
                    message: format!("not a JSON object: {e}"),
                })
            })?;
        }
        let object = config.as_object_mut().ok_or_else(|| {
            Error::Config(stowage_host::ConfigError {
                path: self.plugin_config.clone(),
                line: None,
                key: None,
                message: "the plugin config must be a JSON object".into(),
            })
        })?;
        for set in &self.sets {
            let Some((key, value)) = set.split_once('=') else {
                return Err(Error::Config(stowage_host::ConfigError {
                    path: None,
                    line: None,
                    key: Some(set.clone()),
                    message: "--set takes KEY=VALUE".into(),
                }));
            };
            let value = serde_json::from_str(value)
                .unwrap_or_else(|_| serde_json::Value::String(value.to_owned()));
            object.insert(key.to_owned(), value);
        }
        Ok(config.to_string())
    }
}

/// What is under test for one role.
struct RoleTarget {
    role: Role,
    config_json: String,
    spec: Option<BackendSpec>,
}

fn settings_json(spec: &BackendSpec) -> serde_json::Value {
    serde_json::to_value(&spec.settings.0).unwrap_or_else(|_| serde_json::json!({}))
}

pub async fn run(
    target: String,
    only: Option<Role>,
    config_args: PluginConfigArgs,
    stowage: &Stowage,
    out: Output,
) -> CmdResult {
    let config = stowage.config();
    let by_name: Vec<&BackendSpec> = config
        .storage
        .get(&target)
        .into_iter()
        .chain(config.secrets.get(&target))
        .filter(|s| only.is_none_or(|r| r == s.role))
        .collect();

    let mut program: Option<PluginCommand> = None;
    let mut roles: Vec<RoleTarget> = Vec::new();

    if !by_name.is_empty() {
        // A configured backend: its own config, and its plugin if it has one.
        for spec in by_name {
            if !matches!(spec.kind, BackendKind::Builtin(_)) && program.is_none() {
                program = Some(stowage.plugin_command(spec)?);
            }
            roles.push(RoleTarget {
                role: spec.role,
                config_json: config_args.apply(settings_json(spec))?,
                spec: Some(spec.clone()),
            });
        }
    } else {
        // A plugin by name or path: roles from what it declares; config from the command
        // line, else from a backend that uses it, else empty.
        let (name, path) = discovery::locate_plugin(config, &target)?;
        let command = PluginCommand {
            backend: format!("plugin:{name}"),
            program: path.clone(),
            args: Vec::new(),
            env: Default::default(),
            ..Default::default()
        };
        let (info, _) = stowage_host::describe_plugin(&command, DESCRIBE_TIMEOUT).await?;
        let caps = stowage_conformance::parse_capabilities(&info.capabilities);
        for role in stowage_conformance::roles_of(&caps) {
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
            let base = match (&spec, config_args.given()) {
                (Some(spec), false) => settings_json(spec),
                _ => serde_json::json!({}),
            };
            roles.push(RoleTarget {
                role,
                config_json: config_args.apply(base)?,
                spec: spec.cloned(),
            });
        }
        program = Some(command);
    }

    let mut results: Vec<CaseResult> = Vec::new();
    for target_role in &roles {
        let builtin = target_role.spec.as_ref().and_then(|s| match s.kind {
            BackendKind::Builtin(b) => Some(b),
            _ => None,
        });
        let spec_name = target_role.spec.as_ref().map(|s| s.name.as_str());
        let kit_target = match (builtin, &program, target_role.role) {
            (Some(_), _, Role::Storage) => Target::Storage(stowage.storage(spec_name)?),
            (Some(b), _, Role::Secrets) => Target::Secrets(
                stowage.secrets(spec_name)?,
                (b == BuiltinKind::HostSecrets)
                    .then(|| "env:STOWAGE_CONFORMANCE_SURELY_UNSET".to_owned()),
            ),
            (None, Some(command), _) => Target::Plugin(command.clone()),
            (None, None, _) => continue,
        };
        let cases =
            stowage_conformance::run(&kit_target, target_role.role, &target_role.config_json).await;
        let configure = stowage_conformance::configure_case(target_role.role);
        if !config_args.given()
            && program.is_some()
            && cases.iter().any(|c| {
                c.name == configure
                    && matches!(&c.outcome, Outcome::Fail(why) if why.contains("invalid_argument"))
            })
        {
            eprintln!(
                "hint: the plugin refused an empty config; pass its config with \
                 --plugin-config FILE.json or --set KEY=VALUE, or test a configured backend by \
                 its name"
            );
        }
        // A plugin serving both roles gets its process cases twice: report them once.
        for case in cases {
            if !results.iter().any(|r| r.name == case.name) {
                results.push(case);
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
    let passed = stowage_conformance::passed(results);
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
