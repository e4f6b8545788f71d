//! `stowage secrets …`

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;

use base64::Engine as _;
use clap::Subcommand;
use stowage_host::Stowage;
use stowage_host::protocol::{SecretBytes, SecretRef};

use super::{CmdResult, io_err};
use crate::output::{self, Output};

#[derive(Subcommand, Debug)]
pub enum SecretsCommand {
    /// Resolve secrets. Values are printed only with --reveal.
    Get {
        /// The secrets backend (default: `default-secrets` from the config).
        #[arg(long, short = 'b')]
        backend: Option<String>,
        /// Keys to resolve in one batch (for the `host` backend: env:NAME, path:FILE, …).
        #[arg(required = true)]
        keys: Vec<String>,
        /// A specific version (applies to every key).
        #[arg(long)]
        version: Option<String>,
        /// Print the values. Without it only whether each resolved, and its size.
        #[arg(long)]
        reveal: bool,
    },
    /// Store a secret. The value comes from stdin, a file, or a prompt; never from argv.
    Set {
        /// The secrets backend.
        #[arg(long, short = 'b')]
        backend: Option<String>,
        /// The key.
        key: String,
        /// Read the value from this file (its bytes exactly).
        #[arg(long, value_name = "FILE")]
        from_file: Option<PathBuf>,
        /// Store an empty value (refused otherwise: an empty stdin is usually a mistake).
        #[arg(long)]
        allow_empty: bool,
    },
    /// Delete a secret.
    Delete {
        /// The secrets backend.
        #[arg(long, short = 'b')]
        backend: Option<String>,
        /// The key.
        key: String,
    },
    /// List secret keys (never values).
    List {
        /// The secrets backend.
        #[arg(long, short = 'b')]
        backend: Option<String>,
        /// Only keys starting with this.
        #[arg(long, default_value = "")]
        prefix: String,
    },
}

/// The value for `secrets set`. From a file: its bytes exactly. From a terminal: what was
/// typed. From a pipe (`echo pw | stowage secrets set k`): one trailing newline is
/// dropped, since `echo` adds it and nobody means it; from a file redirected to stdin,
/// the bytes exactly. An empty value is refused unless `allow_empty`.
fn read_value(
    from_file: Option<PathBuf>,
    key: &str,
    backend: &str,
    allow_empty: bool,
) -> Result<SecretBytes, stowage_host::Error> {
    let value = if let Some(path) = from_file {
        let what = path.display().to_string();
        std::fs::File::open(&path)
            .and_then(super::read_input)
            .map_err(super::input_err(backend, &what))?
    } else if std::io::stdin().is_terminal() {
        let value = rpassword::prompt_password(format!("value for {key}: "))
            .map_err(io_err("cannot read the value from the terminal"))?;
        value.into_bytes()
    } else {
        let stdin = std::io::stdin();
        let from_file = stdin_is_regular_file();
        let mut buf =
            super::read_input(stdin.lock()).map_err(super::input_err(backend, "stdin"))?;
        if !from_file && buf.last() == Some(&b'\n') {
            buf.pop();
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
        }
        buf
    };
    if value.is_empty() && !allow_empty {
        return Err(stowage_host::Error::Backend {
            backend: backend.to_owned(),
            error: stowage_host::protocol::PluginError::invalid_argument(format!(
                "the value for {key} is empty; nothing was stored (pass --allow-empty to store \
                 an empty secret)"
            )),
        });
    }
    Ok(SecretBytes::new(value))
}

fn stdin_is_regular_file() -> bool {
    use std::os::fd::AsFd as _;
    std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .map(std::fs::File::from)
        .and_then(|f| f.metadata())
        .is_ok_and(|m| m.is_file())
}

impl SecretsCommand {
    /// Whether the command changes stored data.
    pub fn writes(&self) -> bool {
        matches!(
            self,
            SecretsCommand::Set { .. } | SecretsCommand::Delete { .. }
        )
    }
}

pub async fn run(cmd: SecretsCommand, stowage: &Stowage, out: Output) -> CmdResult {
    match cmd {
        SecretsCommand::Get {
            backend,
            keys,
            version,
            reveal,
        } => {
            let secrets = stowage.secrets(backend.as_deref())?;
            let refs: Vec<SecretRef> = keys
                .iter()
                .map(|k| SecretRef {
                    key: k.clone(),
                    version: version.clone(),
                })
                .collect();
            let answers = secrets.resolve(&refs).await?;
            let mut first_error = None;
            let mut json_items = Vec::new();
            for (key, answer) in keys.iter().zip(answers) {
                match answer {
                    Ok(value) => match out {
                        Output::Json => {
                            let mut item = serde_json::json!({ "key": key, "resolved": true, "size": value.len() });
                            if reveal {
                                item["value_base64"] = base64::engine::general_purpose::STANDARD
                                    .encode(value.expose())
                                    .into();
                                if let Ok(s) = std::str::from_utf8(value.expose()) {
                                    item["value"] = s.into();
                                }
                            }
                            json_items.push(item);
                        }
                        Output::Text if reveal && keys.len() == 1 => {
                            output::raw(value.expose());
                        }
                        Output::Text if reveal => match std::str::from_utf8(value.expose()) {
                            Ok(text) => crate::outln!("{key}={text}"),
                            // Not text: printed whole, marked, rather than garbled.
                            Err(_) => crate::outln!(
                                "{key}=base64:{}",
                                base64::engine::general_purpose::STANDARD.encode(value.expose())
                            ),
                        },
                        Output::Text => crate::outln!(
                            "{key}: resolved ({} bytes; pass --reveal to print it)",
                            value.len()
                        ),
                    },
                    Err(e) => {
                        if out == Output::Json {
                            json_items.push(serde_json::json!({ "key": key, "resolved": false, "error": { "code": e.code().as_str(), "message": e.to_string() } }));
                        } else {
                            eprintln!("error: {key}: {e}");
                        }
                        first_error.get_or_insert(e);
                    }
                }
            }
            if out == Output::Json {
                output::json(&serde_json::json!({ "secrets": json_items }));
            }
            if let Some(e) = first_error {
                return Ok(ExitCode::from(crate::exit::code_for(&e)));
            }
        }
        SecretsCommand::Set {
            backend,
            key,
            from_file,
            allow_empty,
        } => {
            let secrets = stowage.secrets(backend.as_deref())?;
            let value = read_value(from_file, &key, secrets.name(), allow_empty)?;
            let size = value.len();
            let version = secrets.put(&key, value).await?;
            match out {
                Output::Json => output::json(
                    &serde_json::json!({ "key": key, "version": version, "size": size }),
                ),
                Output::Text => eprintln!(
                    "stored {key} ({size} bytes{})",
                    version
                        .map(|v| format!(", version {v}"))
                        .unwrap_or_default()
                ),
            }
        }
        SecretsCommand::Delete { backend, key } => {
            let secrets = stowage.secrets(backend.as_deref())?;
            secrets.delete(&key).await?;
            if out == Output::Json {
                output::json(&serde_json::json!({ "deleted": key }));
            }
        }
        SecretsCommand::List { backend, prefix } => {
            let secrets = stowage.secrets(backend.as_deref())?;
            let items = secrets.list_all(&prefix).await?;
            match out {
                Output::Json => output::json(&serde_json::json!({
                    "items": items.iter().map(|m| serde_json::json!({"key": m.key, "version": m.version})).collect::<Vec<_>>()
                })),
                Output::Text => {
                    let rows: Vec<Vec<String>> = items
                        .iter()
                        .map(|m| {
                            vec![
                                m.key.clone(),
                                m.version.clone().unwrap_or_else(|| "-".into()),
                            ]
                        })
                        .collect();
                    output::table(&["KEY", "VERSION"], &rows);
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
