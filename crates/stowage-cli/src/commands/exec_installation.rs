//! `stowage exec --installation NS/NAME --bundle … --action …`: a CNAB run, recorded.
//!
//! 1. The installation's lease (`cnab-installation:NAME` in the installation's
//!    namespace, on the state's storage backend) is taken for the whole run: a second
//!    run of the same installation waits (`--wait`) or fails with exit 9, naming the
//!    holder; it never interleaves.
//! 2. Under the lease, everything is resolved and checked as plain `exec` does, with
//!    parameters the bundle sources from outputs (`io.cnab.parameter-sources`) taking the
//!    installation's latest output values. If anything fails, nothing is recorded and
//!    nothing runs.
//! 3. The claim and a `running` result are recorded; sensitive parameters go to the
//!    secrets backend, the claim keeps references.
//! 4. The command runs as under plain `exec`, with the claim at
//!    `$STOWAGE_FILES_DIR/cnab/claim.json`, `CNAB_INSTALLATION_NAME`, `CNAB_BUNDLE_NAME`,
//!    `CNAB_ACTION`, `CNAB_REVISION` and `CNAB_CLAIMS_VERSION` (cnab-spec 401 "Claim
//!    injection"), and the directories of the bundle's output paths created (mapped like
//!    `path` destinations: `/cnab/app/outputs/x` is `$STOWAGE_FILES_DIR/cnab/app/outputs/x`).
//! 5. The outputs the command wrote are stored (sensitive ones, `writeOnly` definitions,
//!    in the secrets backend), then the final result: `succeeded` (exit 0), `failed`, or
//!    `cancelled` (after a forwarded signal). Then the lease is released.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use stowage_cnab::delivery::relative_file;
use stowage_cnab::state::{
    CLAIMS_VERSION, CollectedOutput, InstallationRef, RunRecorder, RunRequest, SensitiveStore,
    StateError, StateStore, Status, sources,
};
use stowage_cnab::validate::typed_value;
use stowage_cnab::{Bundle, SetKind};
use stowage_host::Stowage;
use stowage_host::lease::{AcquireOptions, Leases};
use stowage_host::protocol::SecretBytes;

use super::CmdResult;
use super::exec::{ExecArgs, STOP_GRACE, command, prepare, refuse, stage};
use super::lock::{default_owner, parse_duration, report_wait};
use super::supervise::{End, LeaseKeeper, Supervised, describe_status, exit_code};
use crate::exit;
use crate::signals::Interrupt;

/// The largest output stored (the storage contract's document limit).
const MAX_OUTPUT: u64 = 8 * 1024 * 1024;

#[derive(Args, Debug)]
pub struct InstallationArgs {
    /// Record the run as an action on installation NS/NAME (or NAME in -n's namespace):
    /// claim, results and outputs, under the installation's lease. Needs --bundle.
    #[arg(long, value_name = "NS/NAME", requires = "bundle")]
    pub installation: Option<String>,
    /// How long to wait for another run of the installation to end (default: fail at once).
    #[arg(long, value_parser = parse_duration, default_value = "0s", value_name = "DURATION")]
    wait: Duration,
    /// The installation lease's TTL (renewed every TTL/3 while the command runs).
    #[arg(long, value_parser = parse_duration, default_value = "30s", value_name = "DURATION")]
    ttl: Duration,
    /// Where sensitive parameters and outputs are kept (default: `default-secrets`).
    #[arg(long, value_name = "BACKEND")]
    secrets_backend: Option<String>,
    /// The bundle reference to record (default: the bundle file's path).
    #[arg(long, value_name = "REF")]
    bundle_reference: Option<String>,
    /// Keep this parameter or output in the secrets backend even though its definition is
    /// not `writeOnly` (repeat for several).
    #[arg(long = "sensitive", value_name = "NAME")]
    sensitive: Vec<String>,
    /// Labels of a new installation and of the claim (`--label env=prod`, repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = super::sets::parse_label)]
    labels: Vec<(String, String)>,
}

pub async fn run(args: ExecArgs, stowage: &Stowage, interrupt: Option<Interrupt>) -> CmdResult {
    let text = args.installation.installation.clone().expect("checked");
    let at = match InstallationRef::parse(&text, &args.namespace) {
        Ok(at) => at,
        Err(e) => return Ok(refuse(exit::REFUSED, &e)),
    };
    let (Some(bundle_path), Some(action)) = (args.bundle.clone(), args.action.clone()) else {
        return Ok(refuse(
            exit::REFUSED,
            "--installation needs --bundle and --action",
        ));
    };
    let bundle_json = std::fs::read(&bundle_path).map_err(super::io_err(format!(
        "cannot read {}",
        bundle_path.display()
    )))?;
    // Read once: the claim records exactly the bytes that were checked.
    let bundle = match std::str::from_utf8(&bundle_json)
        .map_err(|e| e.to_string())
        .and_then(|text| Bundle::parse(text, Some(&bundle_path)).map_err(|e| e.to_string()))
    {
        Ok(b) => b,
        Err(e) => return Ok(refuse(exit::REFUSED, &e)),
    };
    if let Some(unknown) = args
        .installation
        .sensitive
        .iter()
        .find(|n| !bundle.parameters.contains_key(*n) && !bundle.outputs.contains_key(*n))
    {
        return Ok(refuse(
            exit::REFUSED,
            &format!(
                "--sensitive {unknown}: bundle `{}` has no parameter or output of that name",
                bundle.name
            ),
        ));
    }
    let storage = stowage.storage(args.backend.as_deref())?;
    let secrets = stowage.secrets(args.installation.secrets_backend.as_deref())?;
    let sensitive = SensitiveStore {
        backend: secrets.name().to_owned(),
        secrets,
    };
    let state = StateStore::new(storage.clone());

    // 1. The lease.
    let leases = Leases::open(storage, at.namespace.clone()).await?;
    let lease_name = format!("cnab-installation:{}", at.name);
    let options = AcquireOptions::new(default_owner(true), args.installation.ttl)
        .wait(args.installation.wait);
    let mut interrupt = interrupt;
    let acquired = leases
        .acquire_with(
            &lease_name,
            &options,
            |e| report_wait(e, args.installation.wait),
            async {
                match interrupt.as_mut() {
                    Some(i) => drop(i.next().await),
                    None => std::future::pending().await,
                }
            },
        )
        .await?;
    let Some(lease) = acquired else {
        return Ok(refuse(
            130,
            &format!("interrupted while waiting for installation {at}'s lease"),
        ));
    };
    let keeper = LeaseKeeper::new(leases, lease);

    run_under_lease(
        &args,
        stowage,
        &at,
        &bundle,
        &bundle_json,
        &bundle_path,
        &action,
        &state,
        sensitive,
        interrupt,
        keeper,
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn run_under_lease(
    args: &ExecArgs,
    stowage: &Stowage,
    at: &InstallationRef,
    bundle: &Bundle,
    bundle_json: &[u8],
    bundle_path: &std::path::Path,
    action: &str,
    state: &StateStore,
    sensitive: SensitiveStore,
    mut interrupt: Option<Interrupt>,
    mut keeper: LeaseKeeper,
) -> CmdResult {
    // 2. Resolve and check, with the outputs parameters are sourced from.
    let sourced = if sources::output_sources(bundle).is_empty() {
        None
    } else {
        match state.latest_outputs(at).await {
            Ok(latest) => Some(sources::sourced_set(
                bundle,
                action,
                &BTreeSet::new(),
                &latest,
                &at.namespace,
            )),
            Err(e) => {
                keeper.release().await;
                return Ok(state_failure(&e));
            }
        }
    };
    let prepared = match prepare(args, stowage, Some(bundle), sourced).await {
        Ok(Ok(prepared)) => prepared,
        Ok(Err(code)) => {
            keeper.release().await;
            return Ok(code);
        }
        Err(e) => {
            keeper.release().await;
            return Err(e);
        }
    };

    // 3. The claim.
    let mut parameters = BTreeMap::new();
    let mut sensitive_parameters = BTreeMap::new();
    for (name, parameter) in &bundle.parameters {
        if !stowage_cnab::bundle::applies(&parameter.apply_to, action) {
            continue;
        }
        let given = prepared
            .resolutions
            .iter()
            .filter(|(kind, _)| *kind == SetKind::Parameters)
            .flat_map(|(_, r)| r.entries.iter())
            .find(|e| &e.name == name)
            .and_then(|e| e.outcome.as_ref().ok());
        let sensitive = bundle.is_sensitive(name) || args.installation.sensitive.contains(name);
        match given {
            Some(bytes) if sensitive => {
                sensitive_parameters
                    .insert(name.clone(), SecretBytes::new(bytes.expose().to_vec()));
            }
            Some(bytes) => {
                let text = String::from_utf8_lossy(bytes.expose());
                let value = typed_value(bundle, name, &text)
                    .unwrap_or_else(|| serde_json::Value::String(text.into_owned()));
                parameters.insert(name.clone(), value);
            }
            // A default is in the bundle for anyone to read; it is recorded as it is.
            None => {
                if let Some(default) = bundle.default_of(name) {
                    parameters.insert(name.clone(), default.clone());
                }
            }
        }
    }
    let request = RunRequest {
        at: at.clone(),
        bundle,
        bundle_json,
        bundle_reference: args
            .installation
            .bundle_reference
            .clone()
            .unwrap_or_else(|| bundle_path.display().to_string()),
        action: action.to_owned(),
        parameters,
        sensitive_parameters,
        labels: args.installation.labels.iter().cloned().collect(),
        credential_sets: args.credentials.clone(),
        parameter_sets: args.parameters.clone(),
    };
    let recorder = match RunRecorder::begin(state.clone(), sensitive, request).await {
        Ok(r) => r,
        Err(e) => {
            keeper.release().await;
            return Ok(state_failure(&e));
        }
    };
    let claim = recorder.claim().clone();
    eprintln!(
        "stowage: run {} ({action} of installation {at}, revision {}) started",
        claim.id, claim.revision
    );

    // 4. The command.
    let claim_json = serde_json::to_vec_pretty(&claim).expect("claims serialize");
    let dir = stage(
        &prepared.delivery,
        &[(PathBuf::from("cnab/claim.json"), claim_json.as_slice())],
    );
    let outputs: Vec<(String, PathBuf, bool)> = bundle
        .outputs
        .iter()
        .filter(|(_, o)| stowage_cnab::bundle::applies(&o.apply_to, action))
        .filter_map(|(name, o)| {
            // Mapped as `path` destinations are (a path with `..` is left out).
            let rel = relative_file(o.path.as_deref()?)?;
            let sensitive =
                args.installation.sensitive.contains(name) || bundle.is_output_sensitive(name);
            Some((name.clone(), rel, sensitive))
        })
        .collect();
    let dir = match dir.and_then(|dir| {
        for (_, rel, _) in &outputs {
            if let Some(parent) = rel.parent() {
                use std::os::unix::fs::DirBuilderExt as _;
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir.path().join(parent))
                    .map_err(super::io_err("exec: cannot create an output directory"))?;
            }
        }
        Ok(dir)
    }) {
        Ok(dir) => dir,
        Err(e) => {
            let _ = recorder
                .finish(Status::Failed, format!("not started: {e}"), Vec::new())
                .await;
            keeper.release().await;
            return Err(e);
        }
    };
    let cnab_env = [
        ("CNAB_INSTALLATION_NAME", at.name.clone()),
        ("CNAB_BUNDLE_NAME", bundle.name.clone()),
        ("CNAB_ACTION", action.to_owned()),
        ("CNAB_REVISION", claim.revision.clone()),
        ("CNAB_CLAIMS_VERSION", CLAIMS_VERSION.to_owned()),
    ];
    let cmd = command(&args.command, dir.path(), prepared.delivery, &cnab_env);
    drop(prepared.resolutions);
    let mut child = match Supervised::spawn(cmd) {
        Ok(child) => child,
        Err(e) => {
            eprintln!("error: cannot run {:?}: {e}", args.command[0]);
            let _ = recorder
                .finish(
                    Status::Failed,
                    format!("cannot run {:?}: {e}", args.command[0]),
                    Vec::new(),
                )
                .await;
            keeper.release().await;
            return Ok(super::supervise::spawn_failure_code(&e));
        }
    };
    let pgid = child.pgid();
    let end = child.wait(interrupt.as_mut(), Some(&mut keeper)).await;
    let (exit_status, lost) = match end {
        End::Exited(status) => (status, None),
        End::EndedLate(status, e) => (status, Some(e)),
        End::Lost(e) => {
            eprintln!("stowage: {e}; stopping the command (process group {pgid})");
            (child.stop(STOP_GRACE).await, Some(e))
        }
    };
    let signals = std::mem::take(&mut child.signals);
    drop(child);

    // 5. Outputs and the final result.
    let (status, message) = match (&lost, signals.first()) {
        (Some(e), _) => (Status::Failed, format!("stopped: {e}")),
        (None, Some(signal)) => (
            Status::Cancelled,
            format!(
                "cancelled by {}; the command {}",
                signal.name,
                describe_status(exit_status)
            ),
        ),
        (None, None) if exit_status.success() => (Status::Succeeded, String::new()),
        (None, None) => (
            Status::Failed,
            format!("the command {}", describe_status(exit_status)),
        ),
    };
    let mut collected = Vec::new();
    let mut problems = Vec::new();
    for (name, rel, sensitive) in outputs {
        let path = dir.path().join(&rel);
        match std::fs::metadata(&path) {
            Ok(meta) if meta.len() > MAX_OUTPUT => problems.push(format!(
                "output `{name}` is {} bytes, over the {MAX_OUTPUT}-byte limit; not stored",
                meta.len()
            )),
            Ok(_) => match std::fs::read(&path) {
                Ok(bytes) => collected.push(CollectedOutput {
                    name,
                    value: SecretBytes::new(bytes),
                    sensitive,
                }),
                Err(e) => problems.push(format!("output `{name}` cannot be read: {e}")),
            },
            Err(_) => {} // Not produced.
        }
    }
    drop(dir);
    let message = std::iter::once(message)
        .chain(problems.iter().cloned())
        .filter(|m| !m.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    let names: Vec<String> = collected.iter().map(|o| o.name.clone()).collect();
    let recorded = if keeper.lease.is_valid() {
        recorder.finish(status, message, collected).await
    } else {
        Err(StateError::Refused(format!(
            "the installation's lease ran out before the result could be recorded; run {} \
             stays `running` (its outcome: {})",
            claim.id,
            status.as_str()
        )))
    };
    keeper.release().await;
    for p in &problems {
        eprintln!("stowage: {p}");
    }
    match recorded {
        Ok(result) => eprintln!(
            "stowage: run {} of installation {at}: {}{}",
            claim.id,
            result.status.as_str(),
            if names.is_empty() {
                String::new()
            } else {
                format!("; outputs stored: {}", names.join(", "))
            }
        ),
        Err(e) => {
            eprintln!("error: recording the end of run {}: {e}", claim.id);
            return Ok(state_failure(&e));
        }
    }
    if let Some(e) = lost {
        return Ok(ExitCode::from(exit::code_for(&e)));
    }
    Ok(exit_code(exit_status))
}

/// Reports a state error; returns the exit code.
pub(super) fn state_failure(e: &StateError) -> ExitCode {
    let code = match e {
        StateError::NotFound(_) => exit::NOT_FOUND,
        StateError::Conflict(_) => exit::CONFLICT,
        StateError::Refused(_) | StateError::Corrupt { .. } => exit::REFUSED,
        StateError::Backend(b) => exit::code_for(b),
        _ => exit::FAILURE,
    };
    eprintln!("error: {e}");
    ExitCode::from(code)
}
