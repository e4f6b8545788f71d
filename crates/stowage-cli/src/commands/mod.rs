//! One module per command group.

pub mod agent;
pub mod config;
pub mod conformance;
pub mod exec;
mod exec_installation;
pub mod installations;
pub mod lock;
mod lock_run;
pub mod plugins;
mod plugins_install;
pub mod secrets;
pub mod sets;
mod sets_edit;
mod sets_resolve;
pub mod storage;
mod storage_migrate;
mod supervise;

use std::process::ExitCode;

/// What every command returns: an exit code, or an error to report.
pub type CmdResult = Result<ExitCode, stowage_host::Error>;

/// Wraps a local I/O error with what was being done.
pub fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> stowage_host::Error {
    let context = context.into();
    move |source| stowage_host::Error::Io { context, source }
}

/// Reads a value from a user's input (stdin, a file), at most the contract's value limit:
/// `/dev/zero` or an endless pipe fails after limit + 1 bytes instead of filling memory.
pub fn read_input(reader: impl std::io::Read) -> std::io::Result<Vec<u8>> {
    stowage_host::limits::read_limited(reader, stowage_host::protocol::MAX_VALUE_LEN)
}

/// The error for input that could not be read as a value: too large is the same refusal
/// a backend gives (exit 7), anything else a local I/O failure.
pub fn input_err<'a>(
    backend: &'a str,
    what: &'a str,
) -> impl FnOnce(std::io::Error) -> stowage_host::Error + 'a {
    move |e| {
        if e.kind() == std::io::ErrorKind::FileTooLarge {
            stowage_host::Error::Backend {
                backend: backend.to_owned(),
                error: stowage_host::protocol::PluginError::invalid_argument(format!(
                    "{what} holds more than the {}-byte limit of a value; nothing was written",
                    stowage_host::protocol::MAX_VALUE_LEN
                )),
            }
        } else {
            io_err(format!("cannot read {what}"))(e)
        }
    }
}
