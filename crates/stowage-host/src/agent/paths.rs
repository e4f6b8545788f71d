//! Where the agent lives under `$STOWAGE_HOME`, and the checks that keep it private.

use std::fs::File;
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

/// `$STOWAGE_HOME/agent`: the socket, the lock and the log.
pub fn dir(home: &Path) -> PathBuf {
    home.join("agent")
}

/// The socket CLIs connect to.
pub fn socket(home: &Path) -> PathBuf {
    dir(home).join("agent.sock")
}

/// The agent's log (its stderr when started in the background).
pub fn log(home: &Path) -> PathBuf {
    dir(home).join("agent.log")
}

/// Creates the agent directory (0700) or checks the one there: owned by this user and
/// closed to everyone else, since the socket in it hands out plugin processes.
pub(crate) fn prepare_dir(home: &Path) -> Result<PathBuf, String> {
    let dir = dir(home);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let meta = std::fs::symlink_metadata(&dir)
        .map_err(|e| format!("cannot inspect {}: {e}", dir.display()))?;
    let me = nix::unistd::geteuid().as_raw();
    if !meta.is_dir() {
        return Err(format!("{} is not a directory", dir.display()));
    }
    if meta.uid() != me {
        return Err(format!(
            "{} belongs to uid {}, not this user (uid {me}); the agent will not use it",
            dir.display(),
            meta.uid()
        ));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "{} is open to other users (mode {mode:o}); fix it with `chmod 700 {}`",
            dir.display(),
            dir.display()
        ));
    }
    Ok(dir)
}

/// Holds the agent's lock for as long as the agent runs: one agent per home.
pub(crate) fn lock(dir: &Path) -> Result<nix::fcntl::Flock<File>, String> {
    let path = dir.join("agent.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).map_err(|(_, e)| {
        if e == nix::errno::Errno::EWOULDBLOCK {
            format!("an agent is already running for {}", dir.display())
        } else {
            format!("cannot lock {}: {e}", path.display())
        }
    })
}
