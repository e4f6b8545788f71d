//! What the `stowage exec` tests share: a Stowage home with a config, the `stowage` binary
//! run in it, and the digest a child writes of what it was given.

#![allow(dead_code)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use sha2::Digest as _;

pub use stowage_tests::processes::stowage_bin;

pub const TESTKIT: &str = env!("CARGO_BIN_EXE_stowage-plugin-testkit");

/// A Stowage home (a temporary directory) whose `config.toml` the test writes.
pub struct Home {
    pub dir: tempfile::TempDir,
}

impl Home {
    pub fn new(config: &str) -> Home {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.toml"), config).unwrap();
        Home { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A file in the home, written.
    pub fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// `stowage ARGS` with `stdin`, in this home, with `env` added.
    pub fn run(&self, args: &[&str], stdin: &[u8], env: &[(&str, &str)]) -> Output {
        let mut child = Command::new(stowage_bin())
            .args(args)
            .env("STOWAGE_HOME", self.path())
            .env_remove("STOWAGE_CONFIG")
            .env_remove("STOWAGE_LOG")
            .env("LC_ALL", "C")
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        child.wait_with_output().unwrap()
    }

    /// Like [`Home::run`], and it must succeed.
    pub fn ok(&self, args: &[&str], stdin: &[u8], env: &[(&str, &str)]) -> Output {
        let out = self.run(args, stdin, env);
        assert!(
            out.status.success(),
            "stowage {args:?}: {:?}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// `stowage secrets set [-b BACKEND] KEY` with `value`.
    pub fn secret(&self, backend: Option<&str>, key: &str, value: &[u8]) {
        let mut args = vec!["secrets", "set", key, "--allow-empty"];
        if let Some(b) = backend {
            args.extend(["-b", b]);
        }
        self.ok(&args, value, &[]);
    }

    /// `stowage credentials|parameters apply` of a file with `text`.
    pub fn apply(&self, kind: &str, text: &str) {
        let file = self.file("set.yaml", text);
        self.ok(&[kind, "apply", file.to_str().unwrap()], b"", &[]);
    }
}

/// The config of a testkit secrets backend `name` keeping secrets under the home, noting
/// its pids in `NAME.pids` and its resolve calls in `NAME.calls`; `extra` is more TOML for
/// its config table.
pub fn testkit_backend(home: &Path, name: &str, extra: &str) -> String {
    format!(
        "[secrets.{name}]\npath = \"{TESTKIT}\"\ntimeout = \"30s\"\nretries = 0\n\
         [secrets.{name}.config]\nroot = \"{root}\"\npid-file = \"{pids}\"\n\
         calls-file = \"{calls}\"\n{extra}\n",
        root = home.join(name).display(),
        pids = home.join(format!("{name}.pids")).display(),
        calls = home.join(format!("{name}.calls")).display(),
    )
}

/// The lines of a file (none if it is not there).
pub fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Forgets the pids and calls noted so far, to count those of the next command only.
pub fn reset_counts(home: &Path, backends: &[&str]) {
    for b in backends {
        let _ = std::fs::remove_file(home.join(format!("{b}.pids")));
        let _ = std::fs::remove_file(home.join(format!("{b}.calls")));
    }
}

pub fn sha256(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The child `stowage exec` runs: `sh DIGEST OUT VAR…` writes to OUT, for each VAR,
/// `VAR=sha256(value)` or `VAR unset`; then the mode of `$STOWAGE_FILES_DIR` and of every
/// directory under it, and every file's relative path, mode and sha256, sorted; and the
/// directory's own path to OUT.dir.
pub const DIGEST_SH: &str = r#"set -eu
out=$1; shift
{
  for name in "$@"; do
    if eval "[ -n \"\${$name+set}\" ]"; then
      eval "v=\$$name"
      printf '%s=%s\n' "$name" "$(printf '%s' "$v" | sha256sum | cut -d' ' -f1)"
    else
      printf '%s unset\n' "$name"
    fi
  done
  cd "$STOWAGE_FILES_DIR"
  printf 'dir . %s\n' "$(stat -c %a .)"
  find . -mindepth 1 -type d | sort | while read -r d; do
    printf 'dir %s %s\n' "${d#./}" "$(stat -c %a "$d")"
  done
  find . -type f | sort | while read -r f; do
    printf 'file %s %s %s\n' "${f#./}" "$(stat -c %a "$f")" "$(sha256sum < "$f" | cut -d' ' -f1)"
  done
} > "$out"
printf '%s' "$STOWAGE_FILES_DIR" > "$out.dir"
"#;

/// What [`DIGEST_SH`] should write, given the variables (name, value or none) and the
/// files (relative path, bytes); every directory 0700, every file 0600.
pub fn expected_digest(vars: &[(&str, Option<&[u8]>)], files: &[(&str, &[u8])]) -> String {
    let mut out = String::new();
    for (name, value) in vars {
        match value {
            Some(v) => out.push_str(&format!("{name}={}\n", sha256(v))),
            None => out.push_str(&format!("{name} unset\n")),
        }
    }
    out.push_str("dir . 700\n");
    let mut dirs: Vec<String> = files
        .iter()
        .flat_map(|(path, _)| {
            let parts: Vec<&str> = path.split('/').collect();
            (1..parts.len())
                .map(|n| parts[..n].join("/"))
                .collect::<Vec<_>>()
        })
        .collect();
    dirs.sort();
    dirs.dedup();
    for d in dirs {
        out.push_str(&format!("dir {d} 700\n"));
    }
    let mut files: Vec<&(&str, &[u8])> = files.iter().collect();
    files.sort_by_key(|(p, _)| *p);
    for (path, bytes) in files {
        out.push_str(&format!("file {path} 600 {}\n", sha256(bytes)));
    }
    out
}

/// The repository's `examples/cnab`.
pub fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/cnab")
}
