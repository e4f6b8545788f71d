//! `stowage`: a thin command line over the `stowage-host` library.

mod commands;
mod exit;
mod lazy;
mod output;
mod signals;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory as _, FromArgMatches as _, Parser, Subcommand};
use stowage_cnab::SetKind;
use stowage_host::{ConfigSource, Stowage};

use crate::output::Output;

/// Storage and secrets for CNAB tools, through built-in backends or plugins.
#[derive(Parser, Debug)]
#[command(name = "stowage", version, about, long_about = None, after_help = exit::HELP)]
struct Cli {
    /// Config file (default: $STOWAGE_CONFIG, then $STOWAGE_HOME/config.toml).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,

    /// Stowage's home directory (default: $STOWAGE_HOME, then ~/.stowage).
    #[arg(long, global = true, value_name = "DIR")]
    home: Option<PathBuf>,

    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = output::Format::Text)]
    output: output::Format,

    /// More logs on stderr (-v info, -vv debug, -vvv trace). STOWAGE_LOG sets a filter.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,

    #[command(subcommand)]
    command: lazy::Lazy,
}

/// The top-level subcommands. `lazy` builds them for the parser, each only when used, and
/// holds their one-line descriptions; the doc comments here are for readers.
#[derive(Subcommand, Debug)]
enum Command {
    /// Show, check or create the config file.
    #[command(subcommand)]
    Config(commands::config::ConfigCommand),
    /// Find, inspect and test plugin binaries.
    #[command(subcommand)]
    Plugins(commands::plugins::PluginsCommand),
    /// Store, read, list and delete documents.
    #[command(subcommand)]
    Storage(commands::storage::StorageCommand),
    /// Set, read, list and delete secrets.
    #[command(subcommand)]
    Secrets(commands::secrets::SecretsCommand),
    /// CNAB credential sets: apply, list, show and delete them (kept in storage).
    #[command(subcommand)]
    Credentials(commands::sets::SetsCommand),
    /// CNAB parameter sets: apply, list, show and delete them (kept in storage).
    #[command(subcommand)]
    Parameters(commands::sets::SetsCommand),
    /// Resolve credential and parameter sets, then run a command with the values as
    /// environment variables and files (see `stowage exec --help`). Nothing runs if
    /// anything fails; the exit code is the command's.
    Exec(commands::exec::ExecArgs),
    /// Leases with fencing tokens: run a command while holding one (`lock run`).
    #[command(subcommand)]
    Lock(commands::lock::LockCommand),
    /// CNAB installations recorded by `stowage exec --installation`: list, show, delete.
    #[command(subcommand)]
    Installations(commands::installations::InstallationsCommand),
    /// The runs (claims and results) of an installation.
    #[command(subcommand)]
    Runs(commands::installations::RunsCommand),
    /// The outputs of an installation's runs; sensitive ones only with --reveal.
    #[command(subcommand)]
    Outputs(commands::installations::OutputsCommand),
    /// The opt-in agent that keeps plugin processes warm across invocations: start, stop,
    /// status.
    #[command(subcommand)]
    Agent(commands::agent::AgentCommand),
}

fn init_logging(verbose: u8) {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false);
    if let Ok(filter) = std::env::var("STOWAGE_LOG") {
        use tracing_subscriber::EnvFilter;
        let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("warn"));
        let _ = tracing_subscriber::registry()
            .with(layer)
            .with(filter)
            .try_init();
        return;
    }
    // Without STOWAGE_LOG, a plain level filter: EnvFilter's directive parsing was a
    // tenth of the CLI's start-up.
    let level = match verbose {
        0 => LevelFilter::WARN,
        1 => LevelFilter::INFO,
        2 => LevelFilter::DEBUG,
        _ => LevelFilter::TRACE,
    };
    let mut filter = Targets::new().with_default(level);
    if verbose < 2 {
        // tarpc's own connection warnings repeat what our errors already say.
        filter = filter.with_target("tarpc", LevelFilter::OFF);
    }
    let _ = tracing_subscriber::registry()
        .with(layer)
        .with(filter)
        .try_init();
}

/// How the command ended.
enum Outcome {
    Done(commands::CmdResult),
    Interrupted(signals::Interruption),
}

fn main() -> ExitCode {
    // SIGPIPE stays ignored (Rust's default): a plugin that closes its stdin must be a
    // plugin error, not the death of the host. A closed stdout is handled where stdout
    // is written (`output::write_stdout`).
    // The parser is built, used once and then leaked: freeing its hundreds of arguments
    // costs more than everything else this process does before starting a plugin.
    let command = Box::leak(Box::new(Cli::command()));
    let matches = &*Box::leak(Box::new(command.get_matches_mut()));
    let cli = match Cli::from_arg_matches(matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let words = command_words(matches);
    let writes = cli.command.0.writes();
    let owns_signals = cli.command.0.owns_signals();
    // The agent logs what it does (to its log file) unless told to be quieter.
    let serving = matches!(
        cli.command.0,
        Command::Agent(commands::agent::AgentCommand::Serve { .. })
    );
    init_logging(if serving {
        cli.verbose.max(1)
    } else {
        cli.verbose
    });
    let source = ConfigSource {
        explicit: cli.config.clone(),
        home: cli.home.clone(),
    };
    output::use_yaml(cli.output == output::Format::Yaml);
    let output = Output::from(cli.output);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::FAILURE);
        }
    };
    let outcome = runtime.block_on(async {
        let interrupted = match signals::Interrupt::install() {
            Ok(i) => i,
            Err(e) => {
                return Outcome::Done(Err(stowage_host::Error::Io {
                    context: "cannot install signal handlers".into(),
                    source: e,
                }));
            }
        };
        if owns_signals {
            return Outcome::Done(run(cli, &source, Some(interrupted)).await);
        }
        tokio::select! {
            biased;
            i = interrupted.wait() => Outcome::Interrupted(i),
            r = run(cli, &source, None) => Outcome::Done(r),
        }
    });
    // A built-in operation stuck in the kernel (a hung filesystem) must not keep the
    // process alive after its deadline: blocking threads are not waited for.
    runtime.shutdown_background();
    match outcome {
        Outcome::Done(Ok(code)) => code,
        Outcome::Done(Err(e)) => exit::report(&e, output),
        Outcome::Interrupted(i) => signals::report(&i, &words, writes, output),
    }
}

/// `storage put`, `secrets get`, … for messages.
fn command_words(matches: &clap::ArgMatches) -> String {
    let mut words = Vec::new();
    let mut m = matches;
    while let Some((name, sub)) = m.subcommand() {
        words.push(name);
        m = sub;
    }
    words.join(" ")
}

impl Command {
    /// Whether the command changes stored data (and so may have been half done when
    /// interrupted).
    fn writes(&self) -> bool {
        match self {
            Command::Storage(c) => c.writes(),
            Command::Secrets(c) => c.writes(),
            Command::Lock(c) => c.writes(),
            Command::Credentials(c) | Command::Parameters(c) => c.writes(),
            Command::Installations(c) => c.writes(),
            Command::Config(_)
            | Command::Plugins(_)
            | Command::Exec(_)
            | Command::Runs(_)
            | Command::Outputs(_)
            | Command::Agent(_) => false,
        }
    }

    /// Whether the command handles SIGINT/SIGTERM/SIGHUP itself (`lock run` forwards them
    /// to its child, then releases its lease) instead of being dropped when one arrives.
    fn owns_signals(&self) -> bool {
        matches!(self, Command::Lock(c) if c.owns_signals())
            || matches!(self, Command::Storage(c) if c.owns_signals())
            || matches!(self, Command::Exec(_))
    }
}

async fn run(
    cli: Cli,
    source: &ConfigSource,
    interrupt: Option<signals::Interrupt>,
) -> commands::CmdResult {
    // `config init` must work when the config is broken or absent.
    if let Command::Config(cmd) = &cli.command.0
        && let Some(r) = commands::config::run_without_runtime(cmd, source, cli.output.into())
    {
        return r;
    }
    let mut stowage = Stowage::open(source)?;
    if stowage.config().agent.mode == stowage_host::AgentMode::Auto
        && let Ok(me) = std::env::current_exe()
    {
        stowage.set_agent_program(me);
    }
    let out = Output::from(cli.output);
    let result = match cli.command.0 {
        Command::Config(cmd) => commands::config::run(cmd, &stowage, out).await,
        Command::Plugins(cmd) => commands::plugins::run(cmd, &stowage, out).await,
        Command::Storage(cmd) => commands::storage::run(cmd, &stowage, out, interrupt).await,
        Command::Secrets(cmd) => commands::secrets::run(cmd, &stowage, out).await,
        Command::Lock(cmd) => commands::lock::run(cmd, &stowage, out, interrupt).await,
        Command::Exec(args) => commands::exec::run(args, &stowage, interrupt).await,
        Command::Credentials(cmd) => {
            commands::sets::run(SetKind::Credentials, cmd, &stowage, out).await
        }
        Command::Installations(cmd) => {
            commands::installations::installations(cmd, &stowage, out).await
        }
        Command::Runs(cmd) => commands::installations::runs(cmd, &stowage, out).await,
        Command::Outputs(cmd) => commands::installations::outputs(cmd, &stowage, out).await,
        Command::Parameters(cmd) => {
            commands::sets::run(SetKind::Parameters, cmd, &stowage, out).await
        }
        Command::Agent(cmd) => commands::agent::run(cmd, &stowage, out).await,
    };
    stowage.shutdown().await;
    result
}
