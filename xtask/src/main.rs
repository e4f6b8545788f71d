//! `cargo xtask <task>`: developer chores that need more than one cargo command.
//!
//! - `install [--dir DIR] [--debug | --dynamic] [--porter-home DIR | --no-porter]`: build the
//!   `stowage` CLI and every plugin binary of the workspace and copy them into DIR (default
//!   `$CARGO_HOME/bin`, usually `~/.cargo/bin`), and Stowage as a Porter plugin into
//!   `PORTER_HOME/plugins/stowage/stowage` (default `$PORTER_HOME`, else `~/.porter`).
//!   Statically linked where that is safe (x86_64 glibc; see `static_link`), else dynamically.
//! - `static-check`: the static build of the CLI and the network plugins, checked for glibc's
//!   NSS, then run against the emulators through a host name.
//! - `demo`: install into a temporary prefix and walk through Stowage's main job, once on
//!   the built-in backends and once through a real plugin process, printing every step.
//! - `test`: the whole test suite with every setup step it needs (what CI runs).
//! - `bench [--quick] [--only PARTS]`: release builds (dynamic, and static where safe), then
//!   `stowage-bench` (results in target/bench/).
//! - `fuzz [TARGET…] [--time S]`: the libFuzzer targets of `fuzz/`, S seconds each.

mod bench;
mod demo;
mod emulators;
mod fuzz;
mod install;
mod static_check;
mod static_link;
mod test;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

fn usage() -> ExitCode {
    eprintln!(
        "usage: cargo xtask <task>\n\n\
         tasks:\n  \
         install [--dir DIR] [--debug|--dynamic] [--porter-home DIR|--no-porter]\n  \
                                         build and install `stowage` and every plugin\n  \
                                         (static where safe; --dynamic: as `cargo build`)\n  \
         static-check                    static build, NSS check, plugins by host name on the emulators\n  \
         demo                            install into a temp prefix and show Stowage at work\n  \
         test                            run the whole test suite with its setup (what CI runs)\n  \
         bench [--quick]                 release build, then measure the call path against the floor\n  \
         fuzz [TARGET…] [--time S]       run the fuzz targets (libFuzzer, stable), S seconds each (60)"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("install") => install::run(&args[1..]),
        Some("demo") => demo::run(),
        Some("test") => test::run(&args[1..]),
        Some("bench") => bench::run(&args[1..]),
        Some("fuzz") => fuzz::run(&args[1..]),
        Some("static-check") => static_check::run(&args[1..]),
        _ => return usage(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The cargo that runs us.
pub fn cargo() -> Command {
    let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    c.current_dir(root());
    c
}

/// Runs a command, failing with its description if it fails.
pub fn run_checked(cmd: &mut Command) -> Result<(), String> {
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed ({status})"))
    }
}
