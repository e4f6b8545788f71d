//! On `file://`, documents are as private as the built-in store's: 0600 files in 0700
//! directories, whatever the umask of the operator's shell.

use std::os::unix::fs::PermissionsExt as _;
use std::process::{Command, Stdio};

use stowage_tests::processes::stowage_bin;

const PLUGIN: &str = env!("CARGO_BIN_EXE_stowage-plugin-blob");

#[test]
fn documents_on_file_urls_are_0600_in_0700_directories() {
    let home = tempfile::tempdir().unwrap();
    let store = home.path().join("store");
    std::fs::create_dir(&store).unwrap();
    std::fs::write(
        home.path().join("config.toml"),
        format!(
            "[storage.blob]\npath = \"{PLUGIN}\"\n[storage.blob.config]\nurl = \"file://{}\"\n",
            store.display()
        ),
    )
    .unwrap();
    let mut child = Command::new(stowage_bin())
        .args(["storage", "put", "-b", "blob", "claims", "doc", "-g", "dev"])
        .env("STOWAGE_HOME", home.path())
        .env_remove("STOWAGE_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write as _;
        child.stdin.take().unwrap().write_all(b"claim").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut files = 0;
    let mut stack = vec![store.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
            if entry.file_type().unwrap().is_dir() {
                assert_eq!(mode, 0o700, "{}", entry.path().display());
                stack.push(entry.path());
            } else {
                assert_eq!(mode, 0o600, "{}", entry.path().display());
                files += 1;
            }
        }
    }
    assert!(
        files >= 1,
        "the document was written under {}",
        store.display()
    );
}
