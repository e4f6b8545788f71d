//! `stowage storage migrate --from A --to B`: the command line over
//! [`stowage_host::migrate`], with a progress bar on a terminal and a report at the end.
//!
//! Ctrl-C (or SIGTERM, SIGHUP) stops launching copies and lets the ones in flight finish,
//! then the report says what was done and the command exits 128 + the signal's number; a
//! rerun continues. A second signal abandons the copies in flight at once (their plugin
//! processes are killed; each write is applied whole or not at all).

use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use clap::builder::TypedValueParser as _;
use indicatif::{HumanBytes, ProgressBar, ProgressStyle};
use stowage_host::migrate::{MigrateOptions, MigrateReport, Progress, Selection, Verdict, migrate};
use stowage_host::protocol::{DocumentKey, PluginError};
use stowage_host::{Error, Stowage};

use super::CmdResult;
use crate::exit;
use crate::output::{self, Output};
use crate::signals::{self, Interrupt, Received};

/// How long the kept-alive plugin processes of a migration may sit idle.
const KEEP_ALIVE: Duration = Duration::from_secs(30);
/// At most this many documents are named per list in the text report.
const SHOWN: usize = 20;

#[derive(Args, Debug)]
pub struct MigrateArgs {
    /// The backend to copy from.
    #[arg(long, value_name = "BACKEND")]
    from: String,
    /// The backend to copy to.
    #[arg(long, value_name = "BACKEND")]
    to: String,
    /// Only this collection (repeatable). Required, with --group, when the source is not
    /// the built-in filesystem store: plugins cannot enumerate their collections.
    #[arg(long = "collection", short = 'c', value_name = "C")]
    collections: Vec<String>,
    /// Only this group (repeatable; `--group ''` is the empty group).
    #[arg(long = "group", short = 'g', value_name = "G")]
    groups: Vec<String>,
    /// Replace destination documents that differ from the source (by default they are
    /// left alone and reported: they may be newer).
    #[arg(long)]
    overwrite: bool,
    /// Documents copied at once.
    #[arg(long, default_value_t = stowage_host::migrate::DEFAULT_CONCURRENCY,
          value_parser = clap::value_parser!(u16).range(1..=64).map(usize::from))]
    jobs: usize,
    /// Skip the final comparison of both sides.
    #[arg(long)]
    no_verify: bool,
}

/// The progress bar (hidden when stderr is not a terminal) and the bytes it shows.
struct Bar {
    bar: ProgressBar,
    bytes_done: AtomicU64,
    bytes_total: AtomicU64,
}

impl Bar {
    fn new() -> Bar {
        let bar = if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new_spinner().with_message("listing…");
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        } else {
            ProgressBar::hidden()
        };
        Bar {
            bar,
            bytes_done: AtomicU64::new(0),
            bytes_total: AtomicU64::new(0),
        }
    }

    fn start(&self, prefix: &'static str, length: u64) {
        self.bar.set_style(
            ProgressStyle::with_template(
                "{prefix} [{bar:30}] {pos}/{len} documents, {msg} ({elapsed}, ETA {eta})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        self.bar.set_prefix(prefix);
        self.bar.set_length(length);
        self.bar.set_position(0);
    }

    fn update(&self, p: Progress<'_>) {
        match p {
            Progress::Listed {
                documents, bytes, ..
            } => {
                self.bytes_total.store(bytes, Ordering::Relaxed);
                self.start("copying", documents);
                self.show_bytes();
            }
            Progress::Document { bytes, .. } => {
                self.bytes_done.fetch_add(bytes, Ordering::Relaxed);
                self.bar.inc(1);
                self.show_bytes();
            }
            Progress::Verifying { documents } => {
                self.start("verifying", documents);
                self.bar.set_message("reading both sides");
            }
            Progress::Verified { .. } => self.bar.inc(1),
        }
    }

    fn show_bytes(&self) {
        self.bar.set_message(format!(
            "{} of {}",
            HumanBytes(self.bytes_done.load(Ordering::Relaxed)),
            HumanBytes(self.bytes_total.load(Ordering::Relaxed))
        ));
    }
}

pub async fn run(
    args: MigrateArgs,
    stowage: &Stowage,
    out: Output,
    mut interrupt: Interrupt,
) -> CmdResult {
    if args.from == args.to {
        return Err(Error::Backend {
            backend: args.from,
            error: PluginError::invalid_argument("--from and --to name the same backend"),
        });
    }
    // One kept-alive process per plugin backend for the whole run, instead of one per
    // read and write.
    let session = stowage.with_keep_alive(KEEP_ALIVE);
    let from = session.storage(Some(&args.from))?;
    let to = session.storage(Some(&args.to))?;
    let options = MigrateOptions {
        selection: Selection {
            collections: args.collections,
            groups: args.groups,
        },
        overwrite: args.overwrite,
        concurrency: args.jobs,
        verify: !args.no_verify,
    };
    let bar = Bar::new();
    let started = Instant::now();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut stop = Some(stop);
    let progress = |p: Progress<'_>| bar.update(p);
    let engine = migrate(&from, &to, &options, &progress, async {
        let _ = stopped.await;
    });
    tokio::pin!(engine);
    let mut signal: Option<Received> = None;
    let result = loop {
        tokio::select! {
            r = &mut engine => break r,
            s = interrupt.next() => {
                if signal.is_none() {
                    signal = Some(s);
                    if let Some(stop) = stop.take() {
                        let _ = stop.send(());
                    }
                    bar.bar.suspend(|| eprintln!(
                        "stowage: {}: finishing the copies in flight, then stopping (send it \
                         again to abandon them)", s.name
                    ));
                } else {
                    bar.bar.abandon();
                    let abandoned = signals::abandon(s);
                    return Ok(signals::report(&abandoned, "storage migrate", true, out));
                }
            }
        }
    };
    bar.bar.finish_and_clear();
    session.shutdown().await;
    let report = result?;
    let elapsed = started.elapsed();
    print(&report, elapsed, out);
    let code = match report.verdict() {
        Verdict::Complete => ExitCode::SUCCESS,
        Verdict::Conflicts => ExitCode::from(exit::CONFLICT),
        Verdict::Incomplete => ExitCode::from(exit::FAILURE),
        Verdict::Interrupted => {
            let s = signal.expect("only a signal interrupts");
            interrupted(&report, s, out)
        }
    };
    Ok(code)
}

/// Says that a signal stopped the run, and returns 128 + its number.
fn interrupted(report: &MigrateReport, s: Received, out: Output) -> ExitCode {
    let message = format!(
        "interrupted by {} during `stowage storage migrate`: {} of {} documents done, {} not \
         started; every write is whole; run the same command again to finish",
        s.name,
        report.processed(),
        report.documents,
        report.not_started
    );
    crate::signals::report_handled(s, &message, out)
}

fn print(report: &MigrateReport, elapsed: Duration, out: Output) {
    match out {
        Output::Json => {
            let mut value = serde_json::to_value(report).unwrap_or_default();
            value["verdict"] = serde_json::to_value(report.verdict()).unwrap_or_default();
            value["seconds"] = serde_json::json!(elapsed.as_secs_f64());
            output::json(&value);
        }
        Output::Text => {
            crate::outln!(
                "{} → {}: {} documents ({}) in {} group{}, {:.1}s: {} copied, {} overwritten, \
                 {} identical (skipped), {} different (skipped), {} failed{}{}",
                report.from,
                report.to,
                report.documents,
                HumanBytes(report.bytes),
                report.groups,
                if report.groups == 1 { "" } else { "s" },
                elapsed.as_secs_f64(),
                report.copied,
                report.overwritten,
                report.skipped_identical,
                report.skipped_different,
                report.failed,
                if report.vanished > 0 {
                    format!(", {} deleted from the source meanwhile", report.vanished)
                } else {
                    String::new()
                },
                if report.not_started > 0 {
                    format!(", {} not started", report.not_started)
                } else {
                    String::new()
                },
            );
            list(
                "left alone, differs from the source (--overwrite replaces it)",
                &report.different,
            );
            for f in report.failures.iter().take(SHOWN) {
                crate::outln!("  failed: {}: {}", f.key, f.message);
            }
            if report.failures.len() > SHOWN {
                crate::outln!("  … and {} more failures", report.failures.len() - SHOWN);
            }
            if let Some(why) = &report.aborted {
                crate::outln!("stopped early, the backend failed: {why}");
            }
            if let Some(v) = &report.verification {
                crate::outln!(
                    "verified: {} of {} source documents match ({} in the destination, {} \
                     only there); digest {} (source), {} (destination)",
                    v.matching,
                    v.source_documents,
                    v.destination_documents,
                    v.extra,
                    &v.source_digest[..16],
                    &v.destination_digest[..16],
                );
                list("missing from the destination", &v.missing);
                let unexpected: Vec<DocumentKey> = v
                    .different
                    .iter()
                    .filter(|k| !report.different.contains(k))
                    .cloned()
                    .collect();
                list("differs after the copy (changed meanwhile?)", &unexpected);
            }
        }
    }
}

fn list(what: &str, keys: &[DocumentKey]) {
    for k in keys.iter().take(SHOWN) {
        crate::outln!("  {what}: {k}");
    }
    if keys.len() > SHOWN {
        crate::outln!("  … and {} more", keys.len() - SHOWN);
    }
}
