//! `stowage exec`: resolve credential and parameter sets (checked against a bundle, if
//! given), then run a command with the values delivered as environment variables and
//! files. Nothing runs if anything fails to resolve or check.
//!
//! Files go in a private directory (0700; files 0600) named by `STOWAGE_FILES_DIR` in
//! the command's environment: the bundle's path `/cnab/app/pw` is
//! `$STOWAGE_FILES_DIR/cnab/app/pw`. The directory is removed when the command ends,
//! however it ends, and when stowage is interrupted (after the command has exited).

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use stowage_cnab::delivery::{Delivery, plan};
use stowage_cnab::validate::check_parameters;
use stowage_cnab::{Bundle, Resolution, SetKind, SetStore, ValueSet};
use stowage_host::Stowage;

use super::CmdResult;
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
    bundle: Option<PathBuf>,
    /// The action (`install`, `upgrade`, `uninstall`, or a custom one), with --bundle.
    #[arg(long, requires = "bundle")]
    action: Option<String>,
    /// Credential sets to use (repeat for several).
    #[arg(long = "credentials", short = 'c', value_name = "NAME")]
    credentials: Vec<String>,
    /// Parameter sets to use (repeat for several).
    #[arg(long = "parameters", short = 'p', value_name = "NAME")]
    parameters: Vec<String>,
    /// Without --bundle: a YAML or JSON map of entry names to the environment variables
    /// they go to (`db-password: PGPASSWORD`), instead of the default naming.
    #[arg(long, value_name = "FILE", conflicts_with = "bundle")]
    env_map: Option<PathBuf>,
    /// The namespace of the sets (default: the global namespace, empty).
    #[arg(long, short = 'n', default_value = "")]
    namespace: String,
    /// The storage backend holding the sets (default: `default-storage`).
    #[arg(long, short = 'b')]
    backend: Option<String>,
    /// The command and its arguments (after `--`).
    #[arg(required = true, last = true, value_name = "CMD")]
    command: Vec<String>,
}

/// Errors before the command runs are printed as text (exec's stdout and stderr belong
/// to the command once it runs).
pub async fn run(args: ExecArgs, stowage: &Stowage, interrupt: Option<Interrupt>) -> CmdResult {
    let fail = |code: u8, message: String| {
        eprintln!("error: {message}\nnothing was run");
        Ok(ExitCode::from(code))
    };
    let bundle = match args.bundle.as_deref().map(Bundle::read).transpose() {
        Ok(b) => b,
        Err(e) => return fail(exit::REFUSED, e.to_string()),
    };
    let against = bundle.as_ref().zip(args.action.as_deref());
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
        for name in names {
            match sets.get(&args.namespace, name).await {
                Ok(stored) => chosen.push(stored.set),
                Err(stowage_cnab::Error::Backend(e)) => return Err(e),
                Err(e) => problems.push(e.to_string()),
            }
        }
        // With a bundle, what it requires is checked even when no set of this kind is given.
        if chosen.is_empty() && against.is_some() {
            chosen.push(empty_set(kind));
        }
        // Required entries may be in any of the sets of their kind.
        if let Some((b, action)) = against {
            problems.extend(b.check_sets(&chosen.iter().collect::<Vec<_>>(), action));
        }
        for set in chosen {
            let used = match against {
                Some((b, action)) => b.used_by(&set, action),
                None => set.clone(),
            };
            chosen_sets.push((kind, set, used));
        }
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
    drop(resolutions);
    run_with(&args.command, delivery, interrupt).await
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

fn empty_set(kind: SetKind) -> ValueSet {
    ValueSet {
        kind,
        schema_version: stowage_cnab::DEFAULT_SCHEMA_VERSION.to_owned(),
        name: "(none given)".to_owned(),
        namespace: String::new(),
        labels: Default::default(),
        created: None,
        modified: None,
        entries: Vec::new(),
    }
}

/// Writes the files, runs the command, forwards signals, removes the files.
async fn run_with(
    command: &[String],
    delivery: Delivery,
    interrupt: Option<Interrupt>,
) -> CmdResult {
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
    let mut cmd = tokio::process::Command::new(&command[0]);
    cmd.args(&command[1..]).env(FILES_DIR_ENV, dir.path());
    for (name, value) in &delivery.env {
        cmd.env(name, OsStr::from_bytes(value.expose()));
    }
    drop(delivery);
    let mut child = cmd
        .spawn()
        .map_err(io(&format!("cannot run `{}`", command[0])))?;
    let pid = child.id().map(|p| p as libc::pid_t);
    let status = match interrupt {
        None => child.wait().await,
        Some(mut interrupt) => loop {
            tokio::select! {
                status = child.wait() => break status,
                signal = interrupt.next() => forward(pid, signal.number),
            }
        },
    }
    .map_err(io("cannot wait for the command"))?;
    // The files go before stowage exits, whatever the command did.
    drop(dir);
    Ok(match (status.code(), status.signal()) {
        (Some(code), _) => ExitCode::from(code as u8),
        (None, Some(signal)) => ExitCode::from((128 + signal) as u8),
        _ => ExitCode::from(exit::FAILURE),
    })
}

/// Passes a signal on to the command; a Ctrl-C from the terminal already reached it (it
/// is in stowage's foreground process group), so SIGINT is forwarded only otherwise.
fn forward(pid: Option<libc::pid_t>, signal: i32) {
    let Some(pid) = pid else { return };
    // SAFETY: plain queries of file descriptor 0 and of our own group.
    let from_terminal = unsafe {
        libc::isatty(libc::STDIN_FILENO) == 1
            && libc::tcgetpgrp(libc::STDIN_FILENO) == libc::getpgrp()
    };
    if signal == libc::SIGINT && from_terminal {
        return;
    }
    // SAFETY: a signal to our own child; ESRCH (already gone) is fine.
    unsafe {
        libc::kill(pid, signal);
    }
}

/// Creates `dir/rel` with 0700 directories and a 0600 file.
fn write_private(dir: &Path, rel: &Path, value: &[u8]) -> std::io::Result<()> {
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
