//! One module per command group.

pub mod config;
pub mod conformance;
pub mod plugins;
pub mod secrets;
pub mod storage;

use std::process::ExitCode;

/// What every command returns: an exit code, or an error to report.
pub type CmdResult = Result<ExitCode, stowage_host::Error>;

/// Wraps a local I/O error with what was being done.
pub fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> stowage_host::Error {
    let context = context.into();
    move |source| stowage_host::Error::Io { context, source }
}
