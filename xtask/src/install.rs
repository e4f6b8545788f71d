//! `cargo xtask install`

use std::path::{Path, PathBuf};

use crate::{cargo, run_checked, static_link};

/// The binaries to install: `stowage` and every `stowage-plugin-*` bin target of the workspace.
fn binaries() -> Result<Vec<(String, String)>, String> {
    let out = cargo()
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .output()
        .map_err(|e| format!("cannot run cargo metadata: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let meta: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("cargo metadata: {e}"))?;
    let mut bins = Vec::new();
    for package in meta["packages"].as_array().into_iter().flatten() {
        for target in package["targets"].as_array().into_iter().flatten() {
            let is_bin = target["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "bin"));
            let name = target["name"].as_str().unwrap_or_default();
            if is_bin
                && (name == "stowage"
                    || name.starts_with("stowage-plugin-")
                    || name == PORTER_PROVIDER)
            {
                bins.push((
                    package["name"].as_str().unwrap_or_default().to_owned(),
                    name.to_owned(),
                ));
            }
        }
    }
    bins.sort();
    Ok(bins)
}

/// Stowage as a Porter plugin: built with the others, installed where Porter looks for a
/// plugin named `stowage` (`PORTER_HOME/plugins/stowage/stowage`), not into `dir`.
const PORTER_PROVIDER: &str = "porter-plugin-stowage";

/// How the binaries are linked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Linking {
    /// Statically (glibc, release) where that is safe: the default on x86_64 Linux with glibc.
    /// A binary that fails the check of [`static_link::check`] is built dynamically.
    StaticWhereSafe,
    /// Dynamically, as `cargo build` does.
    Dynamic,
}

impl Linking {
    /// The default of this host: static where it can be, else dynamic.
    pub fn default_for_host() -> Linking {
        if static_link::supported() {
            Linking::StaticWhereSafe
        } else {
            Linking::Dynamic
        }
    }
}

/// Builds and copies the binaries into `dir`; returns the installed paths.
pub fn install(dir: &Path, release: bool, linking: Linking) -> Result<Vec<PathBuf>, String> {
    install_with_porter(dir, release, linking, None)
}

/// Builds `bins` dynamically; returns the directory holding them.
fn build_dynamic(bins: &[&str], release: bool) -> Result<PathBuf, String> {
    let mut build = cargo();
    build.arg("build");
    if release {
        build.arg("--release");
    }
    for bin in bins {
        build.args(["--bin", bin]);
    }
    run_checked(&mut build)?;
    Ok(static_link::target_root().join(if release { "release" } else { "debug" }))
}

/// Where each binary was built: statically where that is safe (said on stdout), dynamically
/// for the rest.
fn build(bins: &[(&str, &str)], release: bool, linking: Linking) -> Result<Vec<PathBuf>, String> {
    let mut built: Vec<Option<PathBuf>> = vec![None; bins.len()];
    if linking == Linking::StaticWhereSafe {
        for (i, (bin, outcome)) in static_link::build_where_safe(bins).into_iter().enumerate() {
            match outcome {
                Ok(path) => built[i] = Some(path),
                Err(why) => println!(
                    "note: {bin} is not safe to link statically ({why}); it is built \
                     dynamically instead"
                ),
            }
        }
    }
    let dynamic: Vec<&str> = bins
        .iter()
        .zip(&built)
        .filter(|(_, b)| b.is_none())
        .map(|((_, bin), _)| *bin)
        .collect();
    if !dynamic.is_empty() {
        let dir = build_dynamic(&dynamic, release)?;
        for ((_, bin), slot) in bins.iter().zip(&mut built) {
            if slot.is_none() {
                *slot = Some(dir.join(bin));
            }
        }
    }
    Ok(built.into_iter().flatten().collect())
}

/// [`install`], plus Stowage as a Porter plugin into `porter_home/plugins/stowage/stowage`
/// when `porter_home` is given.
pub fn install_with_porter(
    dir: &Path,
    release: bool,
    linking: Linking,
    porter_home: Option<&Path>,
) -> Result<Vec<PathBuf>, String> {
    let bins = binaries()?;
    let names: Vec<(&str, &str)> = bins.iter().map(|(p, b)| (p.as_str(), b.as_str())).collect();
    // Static builds are release builds; `--debug` is for development, so dynamic.
    let linking = if release { linking } else { Linking::Dynamic };
    let built = build(&names, release, linking)?;
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut installed = Vec::new();
    for ((_, bin), from) in bins.iter().zip(&built) {
        let (dir, to) = if bin == PORTER_PROVIDER {
            let Some(home) = porter_home else { continue };
            let dir = home.join("plugins").join("stowage");
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            let to = dir.join("stowage");
            (dir, to)
        } else {
            (dir.to_path_buf(), dir.join(bin))
        };
        // Copy to a temp name and rename, so a running binary is never half-written.
        let tmp = dir.join(format!(".{bin}.installing"));
        std::fs::copy(from, &tmp).map_err(|e| format!("cannot copy {}: {e}", from.display()))?;
        std::fs::rename(&tmp, &to).map_err(|e| format!("cannot install {}: {e}", to.display()))?;
        installed.push(to);
    }
    Ok(installed)
}

pub fn run(args: &[String]) -> Result<(), String> {
    let mut dir = None;
    let mut release = true;
    let mut linking = Linking::default_for_host();
    let mut porter_home = None;
    let mut porter = true;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--dir" => dir = Some(PathBuf::from(it.next().ok_or("--dir needs a directory")?)),
            "--debug" => release = false,
            "--dynamic" => linking = Linking::Dynamic,
            // The default since static builds are safe; kept so that old scripts still work.
            "--static" => {
                if !static_link::supported() {
                    return Err(format!(
                        "--static needs x86_64 Linux with glibc (the static builds target {})",
                        static_link::TARGET
                    ));
                }
                linking = Linking::StaticWhereSafe
            }
            "--porter-home" => {
                porter_home = Some(PathBuf::from(
                    it.next().ok_or("--porter-home needs a directory")?,
                ))
            }
            "--no-porter" => porter = false,
            other => {
                return Err(format!(
                    "unknown argument {other:?} (expected --dir DIR, --debug, --dynamic, \
                     --static, --porter-home DIR, --no-porter)"
                ));
            }
        }
    }
    // Porter's home: --porter-home, else $PORTER_HOME, else ~/.porter.
    let porter_home = porter
        .then(|| {
            porter_home
                .or_else(|| std::env::var_os("PORTER_HOME").map(PathBuf::from))
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".porter")))
        })
        .flatten();
    let dir = match dir {
        Some(d) => d,
        None => std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
            .ok_or("cannot tell where to install: pass --dir")?
            .join("bin"),
    };
    for path in install_with_porter(&dir, release, linking, porter_home.as_deref())? {
        println!("installed {}", path.display());
    }
    let on_path =
        std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d == dir));
    if !on_path {
        println!(
            "note: {} is not on PATH; add it, or put plugins in $STOWAGE_HOME/plugins",
            dir.display()
        );
    }
    Ok(())
}
