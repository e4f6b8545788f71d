//! Exit codes, documented in `--help` and the README.

use std::process::ExitCode;

use stowage_host::Error;
use stowage_host::protocol::ErrorCode;

use crate::output::Output;

/// Any other failure.
pub const FAILURE: u8 = 1;
// 2 is clap's usage error.
/// The document, secret or backend item does not exist.
pub const NOT_FOUND: u8 = 3;
/// A precondition failed: already exists, or someone else wrote first.
pub const CONFLICT: u8 = 4;
/// The config file is missing, malformed, or names something that does not exist.
pub const CONFIG: u8 = 5;
/// A plugin is missing, crashed, broke the protocol or missed its deadline.
pub const PLUGIN: u8 = 6;
/// Refused: an invalid set file, or the backend refused (invalid argument, unsupported,
/// unauthenticated, permission denied).
pub const REFUSED: u8 = 7;
/// The backend is unavailable for now; retrying may work.
pub const UNAVAILABLE: u8 = 8;
/// `stowage lock`: the lease is held by someone else (and did not come free within `--wait`).
pub const LEASE_HELD: u8 = 9;
/// `stowage lock`: the lease was lost (taken over, or not renewed within its TTL); `lock run`
/// stopped its command.
pub const LEASE_LOST: u8 = 10;

pub const HELP: &str = "\
Exit codes:
  0  success
  1  other failure
  2  usage error
  3  not found
  4  conflict (already exists, or the version did not match)
  5  config error
  6  plugin error (missing binary, crash, protocol error, deadline exceeded)
  7  refused: an invalid set file, or by the backend (invalid argument,
     unsupported, denied)
  8  backend unavailable (retry later)
  9  lease held by someone else (stowage lock: not acquired within --wait)
  10 lease lost (stowage lock: taken over or not renewed in time; lock run stopped
     its command). Otherwise `lock run` exits with its command's exit code
  129, 130, 143  interrupted by SIGHUP, SIGINT (Ctrl-C) or SIGTERM: every plugin
     process was stopped; an interrupted write may or may not have been applied";

/// The exit code for an error.
pub fn code_for(e: &Error) -> u8 {
    match e {
        Error::Config(_) | Error::UnknownBackend { .. } => CONFIG,
        Error::PluginNotFound { .. }
        | Error::PluginNotRunnable { .. }
        | Error::Plugin { .. }
        | Error::DeadlineExceeded { .. } => PLUGIN,
        Error::Unsupported { .. } => REFUSED,
        Error::Io { .. } => FAILURE,
        Error::LeaseHeld(_) => LEASE_HELD,
        Error::LeaseLost(_) => LEASE_LOST,
        Error::Backend { error, .. } => match error.code {
            ErrorCode::NotFound => NOT_FOUND,
            ErrorCode::AlreadyExists | ErrorCode::Conflict => CONFLICT,
            ErrorCode::InvalidArgument
            | ErrorCode::Unauthenticated
            | ErrorCode::PermissionDenied
            | ErrorCode::Unsupported => REFUSED,
            ErrorCode::Unavailable | ErrorCode::DeadlineExceeded => UNAVAILABLE,
            _ => FAILURE,
        },
        _ => FAILURE,
    }
}

/// Prints an error for humans (or as JSON on stderr) and returns its exit code.
pub fn report(e: &Error, output: Output) -> ExitCode {
    let code = code_for(e);
    match output {
        Output::Text => eprintln!("error: {e}"),
        Output::Json => {
            let value = serde_json::json!({
                "error": {
                    "code": e.code().as_str(),
                    "message": e.to_string(),
                    "exit_code": code,
                }
            });
            eprintln!("{value}");
        }
    }
    ExitCode::from(code)
}
