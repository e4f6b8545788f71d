//! Checks made on a plugin binary at the one place where plugins are spawned, and the
//! messages for a binary that cannot start.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

/// Refuses what should not be run, with a message that names the problem and its fix:
/// a directory, a file that is not executable, a binary (or a directory holding it) that
/// other users can write, and so could replace with code of their own.
pub(crate) fn check_program(program: &Path) -> Result<(), String> {
    let shown = program.display();
    let meta = match std::fs::metadata(program) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!("{shown} does not exist"));
        }
        Err(e) => return Err(format!("cannot inspect {shown}: {e}")),
    };
    if meta.is_dir() {
        return Err(format!(
            "{shown} is a directory, not a plugin binary; point `path` at the executable in it"
        ));
    }
    if !meta.is_file() {
        return Err(format!("{shown} is not a regular file"));
    }
    let mode = meta.permissions().mode();
    if mode & 0o111 == 0 {
        return Err(format!(
            "{shown} is not executable (mode {:o}); make it so with `chmod +x {shown}`",
            mode & 0o7777
        ));
    }
    if mode & 0o002 != 0 {
        return Err(format!(
            "{shown} can be written by any user (mode {:o}), so anyone could change what Stowage \
             runs; fix it with `chmod o-w {shown}`",
            mode & 0o7777
        ));
    }
    // Every directory on the way to the binary, both as named (where a link such as
    // `plugins/stowage-plugin-x` sits) and once links are resolved: whoever can write one of
    // them can rename the binary, or a directory above it, away and put their own in place.
    // A sticky world-writable directory (/tmp) stops others replacing what they do not own.
    let mut dirs: Vec<std::path::PathBuf> = Vec::new();
    let named = std::path::absolute(program).unwrap_or_else(|_| program.to_path_buf());
    for start in [Some(named), program.canonicalize().ok()]
        .into_iter()
        .flatten()
    {
        for dir in start.ancestors().skip(1) {
            if !dirs.iter().any(|d| d == dir) {
                dirs.push(dir.to_path_buf());
            }
        }
    }
    for dir in dirs {
        let Ok(d) = std::fs::metadata(&dir) else {
            continue;
        };
        let dmode = d.permissions().mode();
        if dmode & 0o002 != 0 && dmode & 0o1000 == 0 {
            return Err(format!(
                "{shown} lies in {}, which any user can write (mode {:o}), so anyone could replace \
                 it; fix it with `chmod o-w {}`",
                dir.display(),
                dmode & 0o7777,
                dir.display()
            ));
        }
    }
    Ok(())
}

/// Why spawning `program` failed, in words that point at the real problem. The kernel
/// answers ENOENT both for a missing binary and for a script whose `#!` interpreter is
/// missing; only the second has a file in place.
pub(crate) fn spawn_error(program: &Path, e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::NotFound
        && program.is_file()
        && let Some(interpreter) = shebang_interpreter(program)
    {
        return format!("its interpreter {interpreter} (named on its `#!` line) was not found");
    }
    if e.raw_os_error() == Some(libc::ENOEXEC) {
        return "it is not a binary this machine can run, nor a script with a `#!` line".to_owned();
    }
    format!("starting it failed: {e}")
}

/// The interpreter named on a script's first line.
fn shebang_interpreter(program: &Path) -> Option<String> {
    use std::io::Read as _;
    let mut head = [0u8; 256];
    let n = std::fs::File::open(program).ok()?.read(&mut head).ok()?;
    let line = head[..n].strip_prefix(b"#!")?;
    let line = &line[..line.iter().position(|&b| b == b'\n').unwrap_or(line.len())];
    let text = String::from_utf8_lossy(line);
    text.split_whitespace().next().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &Path, name: &str, text: &str, mode: u32) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    #[test]
    fn each_unrunnable_binary_gets_its_own_message() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        assert!(check_program(d).unwrap_err().contains("is a directory"));
        let p = file(d, "plain", "x", 0o644);
        let e = check_program(&p).unwrap_err();
        assert!(
            e.contains("not executable") && e.contains("chmod +x"),
            "{e}"
        );
        let p = file(d, "open", "x", 0o757);
        let e = check_program(&p).unwrap_err();
        assert!(e.contains("chmod o-w"), "{e}");
        let p = file(d, "ok", "x", 0o755);
        assert!(check_program(&p).is_ok());
        assert!(
            check_program(&d.join("absent"))
                .unwrap_err()
                .contains("does not exist")
        );
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = check_program(&p).unwrap_err();
        assert!(e.contains("any user can write"), "{e}");
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700)).unwrap();
    }

    #[test]
    fn a_writable_directory_further_up_or_behind_a_link_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let up = d.join("up");
        let store = up.join("store");
        std::fs::create_dir_all(&store).unwrap();
        let real = file(&store, "bin", "x", 0o555);
        let links = d.join("links");
        std::fs::create_dir(&links).unwrap();
        let link = links.join("stowage-plugin-x");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert!(check_program(&link).is_ok());
        // Two levels above the binary.
        std::fs::set_permissions(&up, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = check_program(&link).unwrap_err();
        assert!(
            e.contains(&up.display().to_string()) && e.contains("chmod o-w"),
            "{e}"
        );
        std::fs::set_permissions(&up, std::fs::Permissions::from_mode(0o755)).unwrap();
        // The directory holding the link.
        std::fs::set_permissions(&links, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = check_program(&link).unwrap_err();
        assert!(e.contains(&links.display().to_string()), "{e}");
        std::fs::set_permissions(&links, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn a_missing_interpreter_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = file(
            dir.path(),
            "s",
            "#!/nonexistent/python9 -u\nprint(1)\n",
            0o755,
        );
        let e = std::process::Command::new(&p).spawn().unwrap_err();
        let m = spawn_error(&p, &e);
        assert!(m.contains("/nonexistent/python9"), "{m}");
    }
}
