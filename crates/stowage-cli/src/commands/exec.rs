//! `stowage exec`: resolve credential and parameter sets (checked against a bundle, if
//! given), then run a command with the values delivered as environment variables and
//! files. Nothing runs if anything fails to resolve or check.
//!
//! Files go in a private directory (0700; files 0600) named by `STOWAGE_FILES_DIR` in
//! the command's environment: the bundle's path `/cnab/app/pw` is
//! `$STOWAGE_FILES_DIR/cnab/app/pw`. The directory is removed when the command ends,
//! however it ends, and when stowage is interrupted (after the command has exited).
//!
//! The command runs as `lock run`'s does ([`super::supervise`]): in a process group of
//! its own, given the terminal when stowage has it, with SIGINT, SIGTERM and SIGHUP
//! forwarded to the whole group (a third signal sends SIGKILL), and SIGTERM from the
//! kernel if stowage itself is killed. Its exit code is stowage's.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use stowage_cnab::delivery::{Delivery, plan};
use stowage_cnab::validate::check_parameters;
use stowage_cnab::{Bundle, Resolution, SetKind, SetStore, ValueSet};
use stowage_host::Stowage;

use super::CmdResult;
use super::supervise::{End, Supervised, exit_code, spawn_failure_code};
use crate::exit;
use crate::signals::Interrupt;

/// The variable that names the directory of delivered files.
pub const FILES_DIR_ENV: &str = "STOWAGE_FILES_DIR";

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// Deliver values where this bundle.json says, for --action (and check them
    /// against it). Without it, each entry becomes a variable named after it
    /// (upper-cased, other characters replaced by `_`).
    #[arg(long, value_name = "FILE", requires = "action")]
    pub(super) bundle: Option<PathBuf>,
    /// The action (`install`, `upgrade`, `uninstall`, or a custom one), with --bundle.
    #[arg(long, requires = "bundle")]
    pub(super) action: Option<String>,
    /// Credential sets to use (repeat for several).
    #[arg(long = "credentials", short = 'c', value_name = "NAME")]
    pub(super) credentials: Vec<String>,
    /// Parameter sets to use (repeat for several).
    #[arg(long = "parameters", short = 'p', value_name = "NAME")]
    pub(super) parameters: Vec<String>,
    /// Without --bundle: a YAML or JSON map of entry names to the environment variables
    /// they go to (`db-password: PGPASSWORD`), instead of the default naming.
    #[arg(long, value_name = "FILE", conflicts_with = "bundle")]
    env_map: Option<PathBuf>,
    /// The namespace of the sets (default: the global namespace, empty).
    #[arg(long, short = 'n', default_value = "")]
    pub(super) namespace: String,
    /// The storage backend holding the sets, and the installation's state (default:
    /// `default-storage`).
    #[arg(long, short = 'b')]
    pub(super) backend: Option<String>,
    #[command(flatten)]
    pub(super) installation: super::exec_installation::InstallationArgs,
    /// The command and its arguments (after `--`).
    #[arg(required = true, last = true, value_name = "CMD")]
    pub(super) command: Vec<String>,
}

/// Everything resolved and checked, ready to deliver.
pub(super) struct Prepared {
    pub delivery: Delivery,
    /// Every set's resolution, by kind (what a claim's parameters are read from).
    pub resolutions: Vec<(SetKind, Resolution)>,
}

/// Errors before the command runs are printed as text (exec's stdout and stderr belong
/// to the command once it runs).
pub async fn run(args: ExecArgs, stowage: &Stowage, interrupt: Option<Interrupt>) -> CmdResult {
    if args.installation.installation.is_some() {
        return super::exec_installation::run(args, stowage, interrupt).await;
    }
    let bundle = match args.bundle.as_deref().map(Bundle::read).transpose() {
        Ok(b) => b,
        Err(e) => return Ok(refuse(exit::REFUSED, &e.to_string())),
    };
    let prepared = match prepare(&args, stowage, bundle.as_ref(), None).await? {
        Ok(prepared) => prepared,
        Err(code) => return Ok(code),
    };
    drop(prepared.resolutions);
    let dir = stage(&prepared.delivery, &[])?;
    let cmd = command(&args.command, dir.path(), prepared.delivery, &[]);
    let mut child = match Supervised::spawn(cmd) {
        Ok(child) => child,
        Err(e) => {
            eprintln!("error: cannot run {:?}: {e}", args.command[0]);
            return Ok(spawn_failure_code(&e));
        }
    };
    let mut interrupt = interrupt;
    let status = match child.wait(interrupt.as_mut(), None).await {
        End::Exited(status) | End::EndedLate(status, _) => status,
        // Only a failure to wait ends this way without a lease: the command's state is
        // unknown, so it is stopped before its files go.
        End::Lost(e) => {
            eprintln!("stowage: {e}; stopping the command");
            child.stop(STOP_GRACE).await
        }
    };
    drop(child);
    // The files go before stowage exits, whatever the command did.
    drop(dir);
    Ok(exit_code(status))
}

/// Says why nothing was run; returns the exit code.
pub(super) fn refuse(code: u8, message: &str) -> ExitCode {
    eprintln!("error: {message}\nnothing was run");
    ExitCode::from(code)
}

/// Resolves every set (and `extra`, values from parameter sources) and checks them
/// against `bundle` (read from `--bundle`), if any; any problem is reported, with the exit
/// code to end with.
pub(super) async fn prepare(
    args: &ExecArgs,
    stowage: &Stowage,
    bundle: Option<&Bundle>,
    extra: Option<ValueSet>,
) -> Result<Result<Prepared, ExitCode>, stowage_host::Error> {
    let fail = |code: u8, message: String| Ok(Err(refuse(code, &message)));
    let against = bundle.zip(args.action.as_deref());
    let env_map = match args.env_map.as_deref().map(read_env_map).transpose() {
        Ok(map) => map.unwrap_or_default(),
        Err(e) => return fail(exit::REFUSED, e),
    };
    let store = |kind| -> Result<SetStore, stowage_host::Error> {
        Ok(SetStore::new(
            stowage.storage(args.backend.as_deref())?,
            kind,
        ))
    };
    let mut problems = Vec::new();
    let mut failures = Vec::new();
    // (kind, the set, the entries to resolve)
    let mut chosen_sets: Vec<(SetKind, ValueSet, ValueSet)> = Vec::new();
    for (kind, names) in [
        (SetKind::Credentials, &args.credentials),
        (SetKind::Parameters, &args.parameters),
    ] {
        let sets = store(kind)?;
        let mut chosen = Vec::new();
        for name in names.iter() {
            match sets.get(&args.namespace, name).await {
                Ok(stored) => chosen.push(stored.set),
                Err(stowage_cnab::Error::Backend(e)) => return Err(e),
                Err(e) => problems.push(e.to_string()),
            }
        }
        // Values from parameter sources, for what no chosen set gives.
        if kind == SetKind::Parameters
            && let Some(mut extra) = extra.clone()
        {
            extra.entries.retain(|e| {
                !chosen
                    .iter()
                    .any(|s| s.entries.iter().any(|g| g.name == e.name))
            });
            if !extra.entries.is_empty() {
                chosen.push(extra);
            }
        }
        // The sets of a kind act as one: one check of what the bundle requires. With a
        // bundle, what it requires is checked even when no set of this kind is given.
        if chosen.is_empty() && against.is_none() {
            continue;
        }
        let set = merge(kind, chosen);
        let used = match against {
            Some((b, action)) => {
                problems.extend(b.check_set(&set, action));
                b.used_by(&set, action)
            }
            None => set.clone(),
        };
        chosen_sets.push((kind, set, used));
    }
    // Every set at once: one batch call per backend for the whole exec.
    let used: Vec<&ValueSet> = chosen_sets.iter().map(|(_, _, used)| used).collect();
    let resolved = stowage_cnab::resolve_all(&used, stowage).await;
    let mut resolutions: Vec<(SetKind, Resolution)> = Vec::new();
    for ((kind, set, _), resolution) in chosen_sets.iter().zip(resolved) {
        failures.extend(resolution.failure_report(set));
        if let (Some((b, action)), SetKind::Parameters) = (against, kind) {
            problems.extend(check_parameters(b, action, &resolution).problems);
        }
        resolutions.push((*kind, resolution));
    }
    if !problems.is_empty() || !failures.is_empty() {
        let code = if problems.is_empty() {
            exit::FAILURE
        } else {
            exit::REFUSED
        };
        return fail(
            code,
            problems
                .into_iter()
                .chain(failures)
                .collect::<Vec<_>>()
                .join("\n"),
        );
    }
    let sets: Vec<(SetKind, &Resolution)> = resolutions.iter().map(|(k, r)| (*k, r)).collect();
    let delivery = match plan(&sets, against, &env_map) {
        Ok(d) => d,
        Err(p) => return fail(exit::REFUSED, p.join("\n")),
    };
    Ok(Ok(Prepared {
        delivery,
        resolutions,
    }))
}

/// `--env-map`: a mapping of entry names to variable names (YAML, so JSON too).
fn read_env_map(path: &Path) -> Result<BTreeMap<String, String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let map: BTreeMap<String, String> = serde_yaml_ng::from_str(&text).map_err(|e| {
        format!(
            "{}: expected a mapping of entry names to environment variable names: {e}",
            path.display()
        )
    })?;
    for var in map.values() {
        if var.is_empty() || var.contains(['=', '\0']) {
            return Err(format!(
                "{}: `{var}` cannot be an environment variable name",
                path.display()
            ));
        }
    }
    Ok(map)
}

/// The sets of one kind as one set: a later set's entry replaces an earlier one of the
/// same name (as repeating Porter's `--parameter-set` does); the name lists them all.
fn merge(kind: SetKind, sets: Vec<ValueSet>) -> ValueSet {
    let name = if sets.is_empty() {
        "(none given)".to_owned()
    } else {
        sets.iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut entries: Vec<stowage_cnab::Entry> = Vec::new();
    for entry in sets.into_iter().flat_map(|s| s.entries) {
        match entries.iter_mut().find(|e| e.name == entry.name) {
            Some(earlier) => *earlier = entry,
            None => entries.push(entry),
        }
    }
    ValueSet {
        kind,
        schema_version: stowage_cnab::DEFAULT_SCHEMA_VERSION.to_owned(),
        name,
        namespace: String::new(),
        labels: Default::default(),
        created: None,
        modified: None,
        entries,
    }
}

/// Creates the private directory with the delivered files, and `extra` files (path
/// relative to the directory, bytes), and returns it; it is removed when dropped.
pub(super) fn stage(
    delivery: &Delivery,
    extra: &[(PathBuf, &[u8])],
) -> Result<tempfile::TempDir, stowage_host::Error> {
    let io = |what: &str| super::io_err(format!("exec: {what}"));
    let dir = tempfile::Builder::new()
        .prefix("stowage-exec-")
        // Explicitly: tempfile's directories follow the umask (often 0755).
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .tempdir()
        .map_err(io("cannot create the private directory"))?;
    for (rel, value) in &delivery.files {
        write_private(dir.path(), rel, value.expose())
            .map_err(io("cannot write a delivered file"))?;
    }
    for (rel, value) in extra {
        write_private(dir.path(), rel, value).map_err(io("cannot write a delivered file"))?;
    }
    Ok(dir)
}

/// The command, with `$STOWAGE_FILES_DIR`, the delivered variables and `extra_env`.
pub(super) fn command(
    command: &[String],
    dir: &Path,
    delivery: Delivery,
    extra_env: &[(&str, String)],
) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(&command[0]);
    cmd.args(&command[1..]).env(FILES_DIR_ENV, dir);
    for (name, value) in &delivery.env {
        cmd.env(name, OsStr::from_bytes(value.expose()));
    }
    for (name, value) in extra_env {
        cmd.env(name, value);
    }
    cmd
}

/// How long the command has between SIGTERM and SIGKILL when stowage must stop it.
pub(super) const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Creates `dir/rel` with 0700 directories and a 0600 file.
pub(super) fn write_private(dir: &Path, rel: &Path, value: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let path = dir.join(rel);
    if let Some(parent) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    file.write_all(value)
}
