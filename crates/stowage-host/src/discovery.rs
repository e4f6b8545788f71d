//! Finding plugin binaries: `$STOWAGE_HOME/plugins/`, then each directory on `PATH`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::config::{BackendKind, BackendSpec, Config};
use crate::error::{Error, Result};

/// Every plugin executable is named with this prefix.
pub const BINARY_PREFIX: &str = "stowage-plugin-";

/// The directories searched for plugins, in order.
pub fn search_dirs(config: &Config) -> Vec<PathBuf> {
    let mut dirs = vec![config.plugin_dir()];
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if !dir.as_os_str().is_empty() && !dirs.contains(&dir) {
                dirs.push(dir);
            }
        }
    }
    dirs
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Finds the binary of plugin `name` (`blob` → `stowage-plugin-blob`).
pub fn find_plugin(config: &Config, backend: &str, name: &str) -> Result<PathBuf> {
    let binary = format!("{BINARY_PREFIX}{name}");
    let dirs = search_dirs(config);
    dirs.iter()
        .map(|d| d.join(&binary))
        .find(|p| is_executable(p))
        .ok_or_else(|| Error::PluginNotFound {
            backend: backend.to_owned(),
            plugin: name.to_owned(),
            binary,
            searched: dirs,
        })
}

/// The content-addressed store of installed plugins: `$STOWAGE_HOME/plugins/.store`.
pub fn store_dir(config: &Config) -> PathBuf {
    config.plugin_dir().join(".store")
}

/// Where `stowage plugins install` keeps the binary of `digest`: `.store/sha256-HEX`.
pub fn store_path(config: &Config, digest: &crate::pin::Sha256Digest) -> PathBuf {
    store_dir(config).join(format!("sha256-{digest}"))
}

/// Resolves what a user typed to name a plugin: a path (anything with a `/`), whose name is
/// its file name, or a plugin name (`blob` or `stowage-plugin-blob`) found as
/// [`find_plugin`] does. Returns (name, binary).
pub fn locate_plugin(config: &Config, target: &str) -> Result<(String, PathBuf)> {
    if target.contains('/') {
        let path = PathBuf::from(target);
        let name = path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        return Ok((name, path));
    }
    let name = target.strip_prefix(BINARY_PREFIX).unwrap_or(target);
    Ok((name.to_owned(), find_plugin(config, "", name)?))
}

/// The program a plugin backend runs, or an error saying where it looked.
pub fn program_for(config: &Config, spec: &BackendSpec) -> Result<PathBuf> {
    match &spec.kind {
        // A pinned plugin is never taken from PATH: only from Stowage's own directory, by
        // its content address first (what `stowage plugins install` wrote), then by name.
        BackendKind::Plugin(name) if spec.sha256.is_some() => {
            let dir = config.plugin_dir();
            let digest = spec.sha256.expect("checked");
            let binary = format!("{BINARY_PREFIX}{name}");
            [store_path(config, &digest), dir.join(&binary)]
                .into_iter()
                .find(|p| is_executable(p))
                .ok_or_else(|| Error::PluginNotRunnable {
                    backend: spec.name.clone(),
                    program: dir.join(&binary).display().to_string(),
                    message: format!(
                        "it is pinned (sha256 = \"{digest}\") and not installed in {}; a pinned \
                         plugin is never taken from PATH. Install it with `stowage plugins \
                         install SOURCE --name {name} --sha256 {digest}`",
                        dir.display()
                    ),
                })
        }
        BackendKind::Plugin(name) => find_plugin(config, &spec.name, name),
        BackendKind::Path(path) => {
            // Present but unrunnable (a directory, no exec bit, writable by others) is
            // reported when it is spawned, with the precise reason.
            if path.exists() {
                Ok(path.clone())
            } else {
                Err(Error::PluginNotFound {
                    backend: spec.name.clone(),
                    plugin: path.display().to_string(),
                    binary: path
                        .file_name()
                        .map(|f| f.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    searched: vec![path.parent().map(Path::to_path_buf).unwrap_or_default()],
                })
            }
        }
        BackendKind::Builtin(_) => Err(Error::config(format!(
            "backend '{}' is built in and has no plugin binary",
            spec.name
        ))),
    }
}

/// Every plugin binary that can be found, by plugin name; the first found wins, as in
/// [`find_plugin`]. Shadowed copies further down the search path are listed in `shadowed`.
#[derive(Debug, Default)]
pub struct Installed {
    /// Plugin name → the binary that `plugin = "name"` would run.
    pub plugins: BTreeMap<String, PathBuf>,
    /// Binaries hidden by an earlier one of the same name.
    pub shadowed: Vec<PathBuf>,
}

/// Scans the search directories for `stowage-plugin-*` executables.
pub fn installed_plugins(config: &Config) -> Installed {
    let mut found = Installed::default();
    for dir in search_dirs(config) {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut names: Vec<_> = entries.flatten().map(|e| e.path()).collect();
        names.sort();
        for path in names {
            let Some(name) = path
                .file_name()
                .and_then(|f| f.to_str())
                .and_then(|f| f.strip_prefix(BINARY_PREFIX))
                .map(str::to_owned)
            else {
                continue;
            };
            if name.is_empty() || !is_executable(&path) {
                continue;
            }
            match found.plugins.entry(name) {
                std::collections::btree_map::Entry::Occupied(_) => found.shadowed.push(path),
                std::collections::btree_map::Entry::Vacant(slot) => {
                    slot.insert(path);
                }
            }
        }
    }
    found
}
