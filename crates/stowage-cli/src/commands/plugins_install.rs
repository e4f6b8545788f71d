//! `stowage plugins install | uninstall`: a content-addressed, read-only plugin store.
//!
//! ```text
//! $STOWAGE_HOME/plugins/
//!   .store/                      0555 (made writable only while installing or removing)
//!     sha256-<HEX>               0555, named by the SHA-256 of its bytes
//!   stowage-plugin-<NAME> -> .store/sha256-<HEX>      (a relative symbolic link)
//! ```
//!
//! `plugin = "NAME"` finds the link as before; `plugin = "NAME"` with `sha256 = "HEX"` runs
//! `.store/sha256-HEX` itself (and verifies it on every start, see `stowage_host::pin`).

use std::io::{IsTerminal as _, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use stowage_host::discovery::{self, BINARY_PREFIX};
use stowage_host::signing::SigningKey;
use stowage_host::{Config, Error, PluginCommand, Sha256Digest};

use super::{CmdResult, io_err};
use crate::output::{self, Output};

/// The largest download accepted: no plugin binary is near this.
const MAX_DOWNLOAD: u64 = 512 * 1024 * 1024;
/// How long the handshake check of a new binary may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

fn refused(message: impl Into<String>) -> Error {
    Error::Backend {
        backend: "plugins install".into(),
        error: stowage_host::protocol::PluginError::invalid_argument(message),
    }
}

/// Whether `source` is a URL we download, refusing plain HTTP except to this machine.
fn url_of(source: &str) -> Result<Option<reqwest::Url>, Error> {
    if !source.contains("://") {
        return Ok(None);
    }
    let url = reqwest::Url::parse(source)
        .map_err(|e| refused(format!("'{source}' is not a valid URL: {e}")))?;
    let local = url
        .host_str()
        .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
        .and_then(|h| h.parse::<std::net::IpAddr>().ok())
        .is_some_and(|ip| ip.is_loopback());
    match url.scheme() {
        "https" => Ok(Some(url)),
        "http" if local => Ok(Some(url)),
        "http" => Err(refused(format!(
            "'{source}' is plain HTTP; downloads must use https:// (http:// only to 127.0.0.1)"
        ))),
        other => Err(refused(format!(
            "'{source}': unsupported scheme {other}:; give a local file or an https:// URL"
        ))),
    }
}

/// A plugin name as it may appear in `stowage-plugin-NAME`.
fn check_name(name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(refused(format!(
            "'{name}' is not a plugin name: use letters, digits, `-`, `_` and `.` (--name NAME)"
        )))
    }
}

/// Runs `f` with `dir` writable by its owner, then makes it read-only again.
fn with_writable<T>(dir: &Path, f: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
    let set = |mode| {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).map_err(io_err(
            format!("cannot change the mode of {}", dir.display()),
        ))
    };
    set(0o755)?;
    let result = f();
    set(0o555)?;
    result
}

/// The HTTPS client of every download.
fn client() -> Result<reqwest::Client, Error> {
    // reqwest is built without a bundled crypto provider (no aws-lc build): ring, as in the
    // azure-keyvault plugin.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(15))
        .read_timeout(Duration::from_secs(60))
        // Host names through our resolver, not glibc's getaddrinfo: safe in a static binary.
        .dns_resolver(stowage_dns::Resolver::system())
        .build()
        .map_err(|e| refused(format!("cannot build the HTTPS client: {e}")))
}

/// Copies `reader` into `file` while hashing, with a progress bar of `total` bytes.
async fn download(url: &reqwest::Url, file: &mut std::fs::File) -> Result<Sha256Digest, Error> {
    let client = client()?;
    let fail = |e: reqwest::Error| refused(format!("downloading {url} failed: {e}"));
    let mut response = client.get(url.clone()).send().await.map_err(fail)?;
    if !response.status().is_success() {
        return Err(refused(format!(
            "downloading {url} failed: the server answered {}",
            response.status()
        )));
    }
    let total = response.content_length();
    if total.is_some_and(|t| t > MAX_DOWNLOAD) {
        return Err(refused(format!(
            "{url} is larger than {MAX_DOWNLOAD} bytes; that is no plugin binary"
        )));
    }
    let bar = progress_bar(total);
    let mut hasher = HashingWriter::new(file);
    let mut seen = 0u64;
    while let Some(chunk) = response.chunk().await.map_err(fail)? {
        seen += chunk.len() as u64;
        if seen > MAX_DOWNLOAD {
            return Err(refused(format!(
                "{url} sent more than {MAX_DOWNLOAD} bytes; that is no plugin binary"
            )));
        }
        hasher
            .write_all(&chunk)
            .map_err(io_err("cannot write the download"))?;
        bar.set_position(seen);
    }
    bar.finish_and_clear();
    Ok(hasher.finish())
}

fn progress_bar(total: Option<u64>) -> indicatif::ProgressBar {
    // Hidden unless a person watches stderr.
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    match total {
        Some(t) => indicatif::ProgressBar::new(t).with_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        ),
        None => indicatif::ProgressBar::new_spinner(),
    }
}

/// A writer that hashes what passes through it.
struct HashingWriter<'a> {
    file: &'a mut std::fs::File,
    hasher: sha2::Sha256,
}

impl<'a> HashingWriter<'a> {
    fn new(file: &'a mut std::fs::File) -> Self {
        use sha2::Digest as _;
        HashingWriter {
            file,
            hasher: sha2::Sha256::new(),
        }
    }
    fn finish(self) -> Sha256Digest {
        use sha2::Digest as _;
        Sha256Digest(self.hasher.finalize().into())
    }
}

impl std::io::Write for HashingWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        use sha2::Digest as _;
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// The largest signature file accepted: a `.minisig` is a few hundred bytes plus its
/// comments.
const MAX_SIGNATURE: usize = 64 * 1024;

/// Where a signature is fetched from: a URL (same rules as the binary's) or a local file.
enum SignatureSource {
    Url(reqwest::Url),
    File(String),
}

impl std::fmt::Display for SignatureSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SignatureSource::Url(u) => write!(f, "{u}"),
            SignatureSource::File(p) => write!(f, "{p}"),
        }
    }
}

/// `--signature`, or the source with `.minisig` appended (to a URL's path).
fn signature_source(
    given: Option<&str>,
    source: &str,
    url: Option<&reqwest::Url>,
) -> Result<SignatureSource, Error> {
    if let Some(given) = given {
        return Ok(match url_of(given)? {
            Some(u) => SignatureSource::Url(u),
            None => SignatureSource::File(given.to_owned()),
        });
    }
    Ok(match url {
        Some(u) => {
            let mut u = u.clone();
            u.set_path(&format!("{}.minisig", u.path()));
            SignatureSource::Url(u)
        }
        None => SignatureSource::File(format!("{source}.minisig")),
    })
}

/// The signature's text; `Ok(None)` when there is none there (a missing file, a 404).
async fn fetch_signature(from: &SignatureSource) -> Result<Option<String>, Error> {
    let bytes = match from {
        SignatureSource::File(path) => match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(format!("cannot read the signature {path}"))(e)),
        },
        SignatureSource::Url(url) => {
            let fail = |e: reqwest::Error| refused(format!("downloading {url} failed: {e}"));
            let response = client()?.get(url.clone()).send().await.map_err(fail)?;
            if response.status() == reqwest::StatusCode::NOT_FOUND {
                return Ok(None);
            }
            if !response.status().is_success() {
                return Err(refused(format!(
                    "downloading the signature {url} failed: the server answered {}; nothing \
                     was installed",
                    response.status()
                )));
            }
            if response
                .content_length()
                .is_some_and(|n| n > MAX_SIGNATURE as u64)
            {
                return Err(refused(format!(
                    "{url} is larger than {MAX_SIGNATURE} bytes; that is no minisign signature"
                )));
            }
            response.bytes().await.map_err(fail)?.to_vec()
        }
    };
    if bytes.len() > MAX_SIGNATURE {
        return Err(refused(format!(
            "{from} is larger than {MAX_SIGNATURE} bytes; that is no minisign signature"
        )));
    }
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}

/// What `stowage plugins install` was asked to do.
pub struct InstallRequest {
    /// A local file or URL.
    pub source: String,
    /// `--name`.
    pub name: Option<String>,
    /// `--sha256`.
    pub sha256: Option<String>,
    /// `--force`.
    pub force: bool,
    /// `--public-key`, added to the config's `plugin-signing-keys`.
    pub public_keys: Vec<String>,
    /// `--signature`.
    pub signature: Option<String>,
}

/// `stowage plugins install SOURCE [--name N] [--sha256 HEX] [--force] [--public-key KEY]…
/// [--signature FILE_OR_URL]`.
pub async fn install(config: &Config, request: InstallRequest, out: Output) -> CmdResult {
    let InstallRequest {
        source,
        name,
        sha256,
        force,
        public_keys,
        signature,
    } = request;
    let mut keys = config.plugin_signing_keys.clone();
    for text in &public_keys {
        keys.push(SigningKey::parse(text).map_err(|e| refused(format!("--public-key: {e}")))?);
    }
    if keys.is_empty() && signature.is_some() {
        return Err(refused(
            "--signature needs a key to check it against: set `plugin-signing-keys` in the \
             config or pass --public-key KEY (nothing was installed)",
        ));
    }
    let expected = match &sha256 {
        None => None,
        Some(text) => Some(
            Sha256Digest::parse(text.strip_prefix("sha256:").unwrap_or(text))
                .ok_or_else(|| refused(format!("--sha256 '{text}' is not 64 hex digits")))?,
        ),
    };
    if let Some(n) = &name {
        check_name(n)?;
    }
    let url = url_of(&source)?;
    if url.is_some() && expected.is_none() {
        return Err(refused(format!(
            "a download must be pinned: pass --sha256 HEX with the digest its publisher gives \
             for {source} (nothing was downloaded)"
        )));
    }
    let signature_from = if keys.is_empty() {
        None
    } else {
        Some(signature_source(
            signature.as_deref(),
            &source,
            url.as_ref(),
        )?)
    };
    let plugins = config.plugin_dir();
    let store = discovery::store_dir(config);
    for dir in [&config.home, &plugins] {
        std::fs::create_dir_all(dir).map_err(io_err(format!("cannot create {}", dir.display())))?;
    }
    if !store.exists() {
        std::fs::create_dir(&store)
            .map_err(io_err(format!("cannot create {}", store.display())))?;
    }
    // The new binary is written beside the store (same filesystem, for the rename), in a
    // private temporary directory.
    let staging = tempfile::Builder::new()
        .prefix(".staging-")
        .tempdir_in(&plugins)
        .map_err(io_err(format!(
            "cannot create a temporary directory in {}",
            plugins.display()
        )))?;
    let temp = staging.path().join("plugin");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode_private()
        .open(&temp)
        .map_err(io_err(format!("cannot create {}", temp.display())))?;
    let actual = match &url {
        Some(url) => download(url, &mut file).await?,
        None => {
            let mut src =
                std::fs::File::open(&source).map_err(io_err(format!("cannot open {source}")))?;
            let mut w = HashingWriter::new(&mut file);
            std::io::copy(&mut src, &mut w).map_err(io_err(format!("cannot copy {source}")))?;
            w.finish()
        }
    };
    file.sync_all()
        .map_err(io_err("cannot write the plugin binary"))?;
    drop(file);
    if let Some(expected) = expected
        && expected != actual
    {
        return Err(refused(format!(
            "{source} has SHA-256 {actual}, but --sha256 expects {expected}; nothing was installed"
        )));
    }
    // The signature is checked before the binary is run (the handshake below) or moved.
    let verified = match &signature_from {
        None => None,
        Some(from) => {
            let key_ids = keys
                .iter()
                .map(|k| k.id().to_string())
                .collect::<Vec<_>>()
                .join(", ");
            let Some(text) = fetch_signature(from).await? else {
                return Err(refused(format!(
                    "no signature {from} for {source}: a minisign signature by a trusted key \
                     ({key_ids}) is required (pass --signature FILE_OR_URL if it is elsewhere); \
                     nothing was installed"
                )));
            };
            let v = stowage_host::signing::verify_file(&keys, &temp, &text).map_err(|e| {
                refused(format!(
                    "the signature {from} of {source} was refused: {e}; nothing was installed"
                ))
            })?;
            Some(v)
        }
    };
    std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(0o555)).map_err(io_err(
        format!("cannot change the mode of {}", temp.display()),
    ))?;

    // It must answer the handshake; run exactly the bytes just hashed.
    let probe = PluginCommand {
        backend: "plugins install".into(),
        program: temp.clone(),
        sha256: Some(actual),
        ..Default::default()
    };
    let (info, _) = stowage_host::describe_plugin(&probe, CHECK_TIMEOUT).await?;
    let name = match name {
        Some(n) => n,
        None => {
            let n = info.name.clone();
            check_name(&n).map_err(|_| {
                refused(format!(
                    "the plugin calls itself '{n}', which is no file name; pass --name NAME"
                ))
            })?;
            n
        }
    };
    let link = plugins.join(format!("{BINARY_PREFIX}{name}"));
    if let Ok(meta) = std::fs::symlink_metadata(&link)
        && !meta.file_type().is_symlink()
        && !force
    {
        return Err(refused(format!(
            "{} exists and was not installed by `stowage plugins install`; remove it, or pass \
             --force to replace it",
            link.display()
        )));
    }
    let object = discovery::store_path(config, &actual);
    with_writable(&store, || {
        if object.exists() {
            return Ok(());
        }
        std::fs::rename(&temp, &object).map_err(io_err(format!(
            "cannot move the plugin into {}",
            object.display()
        )))
    })?;
    let target = Path::new(".store").join(format!("sha256-{actual}"));
    let temp_link = plugins.join(format!(".{BINARY_PREFIX}{name}.new"));
    let _ = std::fs::remove_file(&temp_link);
    std::os::unix::fs::symlink(&target, &temp_link)
        .and_then(|()| std::fs::rename(&temp_link, &link))
        .map_err(io_err(format!("cannot link {}", link.display())))?;
    drop(staging);

    match out {
        Output::Json => output::json(&serde_json::json!({
            "name": name,
            "version": info.version,
            "sha256": actual.to_string(),
            "path": link,
            "store": object,
            "signature": verified.as_ref().map(|v| serde_json::json!({
                "key_id": v.key_id.to_string(),
                "trusted_comment": v.trusted_comment,
            })),
        })),
        Output::Text => {
            crate::outln!("installed {name} {} ({})", info.version, link.display());
            crate::outln!("sha256: {actual}");
            if let Some(v) = &verified {
                crate::outln!("signature: verified, key {}", v.key_id);
                crate::outln!("trusted comment: {}", v.trusted_comment);
            }
            crate::outln!("pin it in a backend with:");
            crate::outln!("  plugin = \"{name}\"");
            crate::outln!("  sha256 = \"{actual}\"");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `stowage plugins uninstall NAME`: removes the link, and the store object once no link
/// uses it.
pub fn uninstall(config: &Config, name: String, out: Output) -> CmdResult {
    let name = name.strip_prefix(BINARY_PREFIX).unwrap_or(&name).to_owned();
    check_name(&name)?;
    let plugins = config.plugin_dir();
    let link = plugins.join(format!("{BINARY_PREFIX}{name}"));
    let target = match std::fs::read_link(&link) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::Backend {
                backend: "plugins uninstall".into(),
                error: stowage_host::protocol::PluginError::not_found(format!(
                    "no plugin '{name}' is installed in {}",
                    plugins.display()
                )),
            });
        }
        Err(_) => {
            return Err(refused(format!(
                "{} was not installed by `stowage plugins install`; remove it by hand",
                link.display()
            )));
        }
    };
    if !target.starts_with(".store") {
        return Err(refused(format!(
            "{} points outside the plugin store ({}); remove it by hand",
            link.display(),
            target.display()
        )));
    }
    std::fs::remove_file(&link).map_err(io_err(format!("cannot remove {}", link.display())))?;
    let still_used = std::fs::read_dir(&plugins)
        .map(|entries| {
            entries
                .flatten()
                .any(|e| std::fs::read_link(e.path()).is_ok_and(|t| t == target))
        })
        .unwrap_or(true);
    let object = plugins.join(&target);
    let removed = !still_used && object.exists();
    if removed {
        with_writable(&discovery::store_dir(config), || {
            std::fs::remove_file(&object)
                .map_err(io_err(format!("cannot remove {}", object.display())))
        })?;
    }
    match out {
        Output::Json => output::json(&serde_json::json!({
            "name": name, "removed": link, "store_object_removed": removed,
        })),
        Output::Text => crate::outln!("uninstalled {name} ({})", link.display()),
    }
    Ok(ExitCode::SUCCESS)
}

/// The SHA-256 of a plugin binary, for `plugins list` and `show`.
pub fn digest_of(path: &Path) -> Option<Sha256Digest> {
    Sha256Digest::of_file(path).ok()
}

trait PrivateMode {
    fn mode_private(&mut self) -> &mut Self;
}

impl PrivateMode for std::fs::OpenOptions {
    fn mode_private(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt as _;
        self.mode(0o600)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_local_http_urls_are_downloaded() {
        assert!(url_of("./bin/plugin").unwrap().is_none());
        assert!(url_of("https://example.com/p").unwrap().is_some());
        assert!(url_of("http://127.0.0.1:8080/p").unwrap().is_some());
        assert!(url_of("http://example.com/p").is_err());
        assert!(url_of("ftp://example.com/p").is_err());
        assert!(check_name("blob").is_ok());
        assert!(check_name("../x").is_err());
        assert!(check_name(".store").is_err());
    }
}
