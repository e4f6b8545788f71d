//! Text, JSON or YAML output.

use std::io::{IsTerminal as _, Write as _};
use std::sync::atomic::{AtomicBool, Ordering};

/// How results are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// For people.
    Text,
    /// One JSON document on stdout, for programs.
    Json,
}

/// The `--output` flag. YAML is the JSON document printed as YAML: commands see
/// [`Output::Json`] and [`json`] prints YAML instead, so every command that has JSON
/// output has YAML output too, with the same fields. Errors on stderr stay JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// For people.
    Text,
    /// One JSON document on stdout, for programs.
    Json,
    /// The JSON document as YAML.
    Yaml,
}

impl From<Format> for Output {
    fn from(format: Format) -> Output {
        match format {
            Format::Text => Output::Text,
            Format::Json | Format::Yaml => Output::Json,
        }
    }
}

static YAML: AtomicBool = AtomicBool::new(false);

/// Makes [`json`] print YAML (for `--output yaml`).
pub fn use_yaml(on: bool) {
    YAML.store(on, Ordering::Relaxed);
}

/// Like `println!`, for stdout: a reader that went away (`stowage … | head`) ends the
/// process as SIGPIPE would, after stopping every plugin (see [`write_stdout`]).
#[macro_export]
macro_rules! outln {
    () => { $crate::output::write_stdout(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::output::write_stdout(format_args!("{}\n", format_args!($($arg)*))) };
}

/// Like `print!`, with the same handling as [`outln!`].
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => { $crate::output::write_stdout(format_args!($($arg)*)) };
}

/// Writes to stdout. SIGPIPE is ignored in this process, because a plugin that closes its
/// stdin must give a plugin error, not kill the host; so a closed stdout shows up here as
/// an error instead, and is turned back into the quiet death by SIGPIPE that shell
/// pipelines expect. Other write errors end the process with a message.
pub fn write_stdout(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args) {
        stdout_failed(e);
    }
}

/// Ends the process after a failed write to stdout.
pub fn stdout_failed(e: std::io::Error) -> ! {
    stowage_host::groups::kill_all();
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        // SAFETY: restoring the default action and raising the signal in this thread
        // ends the process exactly as a default-SIGPIPE write would have.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            libc::raise(libc::SIGPIPE);
        }
    }
    eprintln!("error: cannot write to stdout: {e}");
    std::process::exit(i32::from(crate::exit::FAILURE));
}

/// Prints a JSON value on stdout (as YAML with `--output yaml`).
pub fn json(value: &serde_json::Value) {
    if YAML.load(Ordering::Relaxed) {
        crate::out!("{}", serde_yaml_ng::to_string(value).unwrap_or_default());
        return;
    }
    crate::outln!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

/// Writes raw bytes to stdout, adding a newline only for a terminal.
pub fn raw(bytes: &[u8]) {
    let mut out = std::io::stdout().lock();
    let written = out.write_all(bytes).and_then(|()| {
        if std::io::stdout().is_terminal() && !bytes.ends_with(b"\n") {
            out.write_all(b"\n")?;
        }
        out.flush()
    });
    if let Err(e) = written {
        stdout_failed(e);
    }
}

/// Prints rows as aligned columns.
pub fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let last = cells.len() - 1;
        cells
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                if i == last {
                    c
                } else {
                    format!("{c:<w$}", w = widths[i])
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
    };
    crate::outln!("{}", line(header.iter().map(|h| h.to_string()).collect()));
    for row in rows {
        crate::outln!("{}", line(row.clone()));
    }
}
