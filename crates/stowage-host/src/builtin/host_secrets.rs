//! `host` secrets: read-only references to what the host machine already has.
//!
//! | reference        | value                                                        |
//! |------------------|--------------------------------------------------------------|
//! | `env:NAME`       | the environment variable `NAME`                              |
//! | `path:FILE`      | the bytes of `FILE`                                          |
//! | `command:CMD`    | stdout of `CMD`, split like a shell would but run without one |
//! | `shell:CMD`      | stdout of `/bin/sh -c CMD`, when a shell is really wanted     |
//! | `value:TEXT`     | `TEXT` itself                                                |
//!
//! Command output has one trailing newline trimmed; a non-zero exit is an error carrying
//! the command's stderr (never its stdout, which may be the secret).

use std::process::Stdio;
use std::time::Duration;

use async_trait::async_trait;
use stowage_protocol::{Capability, MAX_VALUE_LEN, PluginError, SecretBytes, SecretRef, Secrets};
use tokio::io::AsyncReadExt as _;

/// The built-in read-only host secret source.
#[derive(Clone, Debug)]
pub struct HostSecrets {
    timeout: Duration,
}

impl HostSecrets {
    /// Commands are killed after `timeout`.
    pub fn new(timeout: Duration) -> Self {
        HostSecrets { timeout }
    }
}

#[async_trait]
impl Secrets for HostSecrets {
    fn capabilities(&self) -> Vec<Capability> {
        vec![Capability::SecretsResolve]
    }

    async fn resolve_one(&self, reference: &SecretRef) -> Result<SecretBytes, PluginError> {
        if reference.version.is_some() {
            return Err(PluginError::invalid_argument(
                "host secrets have no versions; drop the version",
            ));
        }
        let Some((scheme, rest)) = reference.key.split_once(':') else {
            return Err(bad_scheme(&reference.key));
        };
        match scheme {
            "env" => std::env::var_os(rest)
                .map(|v| SecretBytes::new(v.into_encoded_bytes()))
                .ok_or_else(|| {
                    PluginError::not_found(format!("environment variable {rest} is not set"))
                }),
            "path" => {
                let path = expand_home(rest);
                let value = read_limited_file(&path).await.map_err(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => {
                        PluginError::not_found(format!("file {path} does not exist"))
                    }
                    std::io::ErrorKind::PermissionDenied => {
                        PluginError::permission_denied(format!("cannot read {path}: {e}"))
                    }
                    std::io::ErrorKind::FileTooLarge => PluginError::invalid_argument(format!(
                        "{path} is larger than the {MAX_VALUE_LEN}-byte limit of a secret value"
                    )),
                    _ => PluginError::internal(format!("cannot read {path}: {e}")),
                })?;
                Ok(SecretBytes::new(value))
            }
            "command" => {
                let argv = shlex::split(rest).filter(|a| !a.is_empty()).ok_or_else(|| {
                    PluginError::invalid_argument(
                        "command: has unbalanced quotes or is empty (use shell: to run through /bin/sh)",
                    )
                })?;
                self.run(&argv[0], &argv[1..], rest).await
            }
            "shell" => {
                self.run("/bin/sh", &["-c".to_owned(), rest.to_owned()], rest)
                    .await
            }
            "value" => Ok(SecretBytes::from(rest)),
            _ => Err(bad_scheme(&reference.key)),
        }
    }
}

/// How much of a failing command's stderr is kept for its error message.
const MAX_STDERR: usize = 64 * 1024;

/// Reads a file, refusing (without reading it all) one larger than a secret value may be.
async fn read_limited_file(path: &str) -> std::io::Result<Vec<u8>> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let file = std::fs::File::open(&path)?;
        crate::limits::read_limited(file, MAX_VALUE_LEN)
    })
    .await
    .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())))
}

fn bad_scheme(key: &str) -> PluginError {
    let scheme = key.split_once(':').map_or("", |(s, _)| s);
    PluginError::invalid_argument(format!(
        "host secret references look like env:NAME, path:FILE, command:CMD, shell:CMD or value:TEXT \
         (got scheme {scheme:?})"
    ))
}

fn expand_home(path: &str) -> String {
    match (path.strip_prefix("~/"), std::env::var("HOME")) {
        (Some(rest), Ok(home)) => format!("{home}/{rest}"),
        _ => path.to_owned(),
    }
}

impl HostSecrets {
    async fn run(
        &self,
        program: &str,
        args: &[String],
        shown: &str,
    ) -> Result<SecretBytes, PluginError> {
        let mut child = tokio::process::Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own group, so a deadline or a signal to the host takes what it started too.
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => {
                    PluginError::not_found(format!("command {program:?} not found"))
                }
                _ => PluginError::internal(format!("cannot run {program:?}: {e}")),
            })?;
        let pgid = child.id().unwrap_or(0);
        let _group = crate::groups::register(pgid, "host");
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        let run = async {
            // Both streams are read only up to a limit, so a command that never stops
            // printing (`command:yes`) costs a bounded amount of memory.
            let mut out = Vec::new();
            let mut err = Vec::new();
            let mut stdout = stdout.take(MAX_VALUE_LEN as u64 + 1);
            let mut stderr = stderr.take(MAX_STDERR as u64);
            let mut err_read = std::pin::pin!(stderr.read_to_end(&mut err));
            let mut err_done = false;
            let mut out_read = std::pin::pin!(stdout.read_to_end(&mut out));
            // Both pipes drain together (a command filling stderr must not block), but
            // stdout going over the limit ends the wait at once.
            let out_result = loop {
                tokio::select! {
                    r = &mut out_read => break r,
                    r = &mut err_read, if !err_done => { r?; err_done = true; }
                }
            };
            out_result?;
            if out.len() > MAX_VALUE_LEN {
                return Ok(None);
            }
            if !err_done {
                err_read.await?;
            }
            let status = child.wait().await?;
            Ok::<_, std::io::Error>(Some((status, out, err)))
        };
        let outcome = tokio::time::timeout(self.timeout, run).await;
        if !matches!(outcome, Ok(Ok(Some(_)))) {
            crate::groups::kill_group(pgid);
        }
        let (status, mut out, err) = match outcome {
            Ok(Ok(Some(r))) => r,
            Ok(Ok(None)) => {
                return Err(PluginError::invalid_argument(format!(
                    "command `{shown}` printed more than the {MAX_VALUE_LEN}-byte limit of a \
                     secret value; it was stopped"
                )));
            }
            Ok(Err(e)) => {
                return Err(PluginError::internal(format!(
                    "command `{shown}` failed: {e}"
                )));
            }
            Err(_) => {
                return Err(PluginError::new(
                    stowage_protocol::ErrorCode::DeadlineExceeded,
                    format!("command `{shown}` did not finish within {:?}", self.timeout),
                ));
            }
        };
        if !status.success() {
            let err = String::from_utf8_lossy(&err);
            let err = err.trim();
            return Err(PluginError::internal(format!(
                "command `{shown}` failed ({status}){}",
                if err.is_empty() {
                    String::new()
                } else {
                    format!(": {err}")
                }
            )));
        }
        if out.last() == Some(&b'\n') {
            out.pop();
            if out.last() == Some(&b'\r') {
                out.pop();
            }
        }
        Ok(SecretBytes::new(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn resolve(key: &str) -> Result<Vec<u8>, PluginError> {
        HostSecrets::new(Duration::from_secs(5))
            .resolve_one(&SecretRef::new(key))
            .await
            .map(|s| s.expose().to_vec())
    }

    #[tokio::test]
    async fn sources() {
        assert_eq!(resolve("value:abc").await.unwrap(), b"abc");
        assert_eq!(resolve("command:printf 'a b\\n'").await.unwrap(), b"a b");
        assert_eq!(resolve("shell:echo x | tr x y").await.unwrap(), b"y");
        let e = resolve("command:sh -c 'echo oops >&2; exit 3'")
            .await
            .unwrap_err();
        assert!(e.message.contains("oops"), "{e}");
        assert_eq!(
            resolve("env:STOWAGE_SURELY_UNSET").await.unwrap_err().code,
            stowage_protocol::ErrorCode::NotFound
        );
        assert_eq!(
            resolve("path:/nonexistent/x").await.unwrap_err().code,
            stowage_protocol::ErrorCode::NotFound
        );
        assert_eq!(
            resolve("bogus:x").await.unwrap_err().code,
            stowage_protocol::ErrorCode::InvalidArgument
        );
    }

    #[tokio::test]
    async fn endless_output_is_cut_at_the_value_limit() {
        let e = resolve("command:yes").await.unwrap_err();
        assert_eq!(e.code, stowage_protocol::ErrorCode::InvalidArgument, "{e}");
        assert!(e.message.contains("limit"), "{e}");
        let e = resolve("path:/dev/zero").await.unwrap_err();
        assert_eq!(e.code, stowage_protocol::ErrorCode::InvalidArgument, "{e}");
    }
}
