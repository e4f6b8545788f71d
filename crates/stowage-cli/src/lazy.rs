//! The top-level subcommands, each built only when it is the one used.
//!
//! clap's derive builds every argument of every command before parsing, and that was most
//! of the work `stowage` did before starting a plugin. Each subcommand here starts as a
//! name and a one-line description (enough for `stowage --help`), and clap builds the
//! rest (`Command::defer`) only for the subcommand on the command line. Parsing into
//! [`Command`] stays the derive's.

use clap::{Args, FromArgMatches, Subcommand};

use crate::Command;
use crate::commands;

type Build = fn(clap::Command) -> clap::Command;

/// Every top-level subcommand: name, description, and what builds the rest of it. The
/// names must be [`Command`]'s (a test checks).
const SUBCOMMANDS: &[(&str, &str, Build)] = &[
    (
        "config",
        "Show, check or create the config file.",
        nested::<commands::config::ConfigCommand>,
    ),
    (
        "plugins",
        "Find, inspect and test plugin binaries.",
        nested::<commands::plugins::PluginsCommand>,
    ),
    (
        "storage",
        "Store, read, list and delete documents.",
        nested::<commands::storage::StorageCommand>,
    ),
    (
        "secrets",
        "Set, read, list and delete secrets.",
        nested::<commands::secrets::SecretsCommand>,
    ),
    (
        "credentials",
        "CNAB credential sets: apply, list, show and delete them (kept in storage).",
        nested::<commands::sets::SetsCommand>,
    ),
    (
        "parameters",
        "CNAB parameter sets: apply, list, show and delete them (kept in storage).",
        nested::<commands::sets::SetsCommand>,
    ),
    (
        "exec",
        "Resolve credential and parameter sets, then run a command with the values as \
         environment variables and files (see `stowage exec --help`). Nothing runs if anything \
         fails; the exit code is the command's.",
        commands::exec::ExecArgs::augment_args,
    ),
    (
        "lock",
        "Leases with fencing tokens: run a command while holding one (`lock run`).",
        nested::<commands::lock::LockCommand>,
    ),
    (
        "installations",
        "CNAB installations recorded by `stowage exec --installation`: list, show, delete.",
        nested::<commands::installations::InstallationsCommand>,
    ),
    (
        "runs",
        "The runs (claims and results) of an installation.",
        nested::<commands::installations::RunsCommand>,
    ),
    (
        "outputs",
        "The outputs of an installation's runs; sensitive ones only with --reveal.",
        nested::<commands::installations::OutputsCommand>,
    ),
    (
        "agent",
        "The opt-in agent that keeps plugin processes warm across invocations: start, stop, \
         status.",
        nested::<commands::agent::AgentCommand>,
    ),
];

/// A command group, as the derive builds one.
fn nested<S: Subcommand>(cmd: clap::Command) -> clap::Command {
    S::augment_subcommands(cmd)
        .subcommand_required(true)
        .arg_required_else_help(true)
}

/// [`Command`], with subcommands built on demand.
#[derive(Debug)]
pub struct Lazy(pub Command);

impl FromArgMatches for Lazy {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        Command::from_arg_matches(matches).map(Lazy)
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        self.0.update_from_arg_matches(matches)
    }
}

impl Subcommand for Lazy {
    fn augment_subcommands(cmd: clap::Command) -> clap::Command {
        SUBCOMMANDS.iter().fold(cmd, |cmd, &(name, about, build)| {
            cmd.subcommand(clap::Command::new(name).about(about).defer(build))
        })
    }

    fn augment_subcommands_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_subcommands(cmd)
    }

    fn has_subcommand(name: &str) -> bool {
        Command::has_subcommand(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    /// Names of subcommands and ids of arguments, two levels down.
    fn shape(c: &clap::Command) -> Vec<String> {
        let mut c = c.clone();
        c.build();
        let mut out: Vec<String> = c.get_arguments().map(|a| a.get_id().to_string()).collect();
        for s in c.get_subcommands() {
            out.push(format!("{}:", s.get_name()));
            out.extend(
                s.get_arguments()
                    .map(|a| format!("{}.{}", s.get_name(), a.get_id())),
            );
            out.extend(
                s.get_subcommands()
                    .map(|t| format!("{}.{}", s.get_name(), t.get_name())),
            );
        }
        out.sort();
        out
    }

    #[test]
    fn each_lazy_subcommand_builds_into_the_derives() {
        let derived = Command::augment_subcommands(clap::Command::new("stowage"));
        let lazy = Lazy::augment_subcommands(clap::Command::new("stowage"));
        let names = |c: &clap::Command| {
            let mut n: Vec<String> = c
                .get_subcommands()
                .map(|s| s.get_name().to_owned())
                .collect();
            n.sort();
            n
        };
        assert_eq!(names(&lazy), names(&derived));
        for sub in derived.get_subcommands() {
            let built = lazy.find_subcommand(sub.get_name()).unwrap();
            assert_eq!(shape(built), shape(sub), "{}", sub.get_name());
            assert!(shape(sub).len() > 1, "{} has no arguments?", sub.get_name());
        }
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        crate::Cli::command().debug_assert();
    }
}
