//! Installing and pinning plugins, and the environment plugins get, through the `stowage`
//! binary: `plugins install` (local file and a download from 127.0.0.1), `sha256` pins
//! (verified, never taken from PATH, a mismatch names both digests and runs nothing),
//! `uninstall`, and `env-allow` versus the default environment.

use std::io::{Read as _, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use stowage_host::Sha256Digest;
use stowage_tests::processes::stowage_bin;

const TESTKIT: &str = env!("CARGO_BIN_EXE_stowage-plugin-testkit");

/// A private home, and a copy of the testkit binary in a directory of its own.
struct Home {
    dir: tempfile::TempDir,
    plugin: PathBuf,
    digest: Sha256Digest,
}

impl Home {
    fn new() -> Home {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let plugin = bin.join("testkit-build");
        std::fs::copy(TESTKIT, &plugin).unwrap();
        std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let digest = Sha256Digest::of_file(&plugin).unwrap();
        Home {
            dir,
            plugin,
            digest,
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn config(&self, text: &str) {
        std::fs::write(self.path().join("config.toml"), text).unwrap();
    }

    fn stowage(&self, args: &[&str]) -> Output {
        self.stowage_with(args, &[])
    }

    fn stowage_with(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(stowage_bin());
        cmd.arg("--home").arg(self.path()).args(args);
        cmd.env_remove("STOWAGE_CONFIG").env_remove("STOWAGE_LOG");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn a_local_install_is_content_addressed_read_only_and_pinnable() {
    let h = Home::new();
    let o = h.stowage(&["plugins", "install", h.plugin.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains(&format!("sha256 = \"{}\"", h.digest)), "{out}");

    let plugins = h.path().join("plugins");
    let object = plugins.join(".store").join(format!("sha256-{}", h.digest));
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&object), 0o555);
    assert_eq!(mode(&plugins.join(".store")), 0o555);
    let link = plugins.join("stowage-plugin-testkit");
    assert_eq!(
        std::fs::read_link(&link).unwrap(),
        Path::new(".store").join(format!("sha256-{}", h.digest))
    );

    h.config(&format!(
        "[storage.p]\nplugin = \"testkit\"\nsha256 = \"{}\"\n[storage.p.config]\nroot = \"{}\"\n",
        h.digest,
        h.path().join("data").display()
    ));
    let put = Command::new(stowage_bin())
        .arg("--home")
        .arg(h.path())
        .args(["storage", "put", "c", "n", "-b", "p"])
        .env_remove("STOWAGE_CONFIG")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(b"pinned")?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(put.status.success(), "{}", text(&put));
    let get = h.stowage(&["storage", "get", "c", "n", "-b", "p"]);
    assert_eq!(get.stdout, b"pinned", "{}", text(&get));

    let list = h.stowage(&["--output", "json", "plugins", "list"]);
    let v: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let row = v["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["plugin"] == "testkit")
        .unwrap_or_else(|| panic!("{v}"));
    assert_eq!(row["sha256"], h.digest.to_string());

    // Uninstall removes the link and, now unused, the store object.
    let o = h.stowage(&["plugins", "uninstall", "testkit"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(std::fs::symlink_metadata(&link).is_err());
    assert!(!object.exists());
    // A binary put there by hand is not this command's to remove.
    std::fs::copy(&h.plugin, &link).unwrap();
    let o = h.stowage(&["plugins", "uninstall", "testkit"]);
    assert_eq!(o.status.code(), Some(7), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("by hand"));
}

#[test]
fn a_pin_mismatch_names_both_digests_and_runs_nothing() {
    let h = Home::new();
    let wrong = Sha256Digest::of_reader(&b"something else"[..]).unwrap();
    let env_file = h.path().join("env");
    h.config(&format!(
        "[storage.p]\npath = \"{}\"\nsha256 = \"{wrong}\"\n[storage.p.config]\nroot = \"{}\"\nenv-file = \"{}\"\n",
        h.plugin.display(),
        h.path().join("data").display(),
        env_file.display()
    ));
    let o = h.stowage(&["storage", "get", "c", "n", "-b", "p"]);
    assert_eq!(o.status.code(), Some(6), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&wrong.to_string()), "{err}");
    assert!(err.contains(&h.digest.to_string()), "{err}");
    assert!(err.contains("nothing was run"), "{err}");
    assert!(!env_file.exists(), "the plugin ran");
}

#[test]
fn a_pinned_plugin_is_never_taken_from_path() {
    let h = Home::new();
    let on_path = h.path().join("path-dir");
    std::fs::create_dir(&on_path).unwrap();
    std::fs::copy(&h.plugin, on_path.join("stowage-plugin-onpath")).unwrap();
    let path = format!("{}:/usr/bin:/bin", on_path.display());
    let backend = |pin: &str| {
        format!(
            "[storage.p]\nplugin = \"onpath\"\n{pin}\n[storage.p.config]\nroot = \"{}\"\n",
            h.path().join("data").display()
        )
    };
    h.config(&backend(""));
    let o = h.stowage_with(&["storage", "count", "c", "-b", "p"], &[("PATH", &path)]);
    assert!(o.status.success(), "unpinned, from PATH: {}", text(&o));

    h.config(&backend(&format!("sha256 = \"{}\"", h.digest)));
    let o = h.stowage_with(&["storage", "count", "c", "-b", "p"], &[("PATH", &path)]);
    assert_eq!(o.status.code(), Some(6), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("never taken from PATH"), "{err}");
    assert!(err.contains("stowage plugins install"), "{err}");
}

/// Serves `body` over HTTP on 127.0.0.1 to every request, for as long as the test runs.
fn serve(body: Vec<u8>) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    format!("http://{addr}/stowage-plugin-testkit")
}

#[test]
fn a_download_must_be_pinned_and_is_verified_before_install() {
    let h = Home::new();
    let url = serve(std::fs::read(&h.plugin).unwrap());

    let o = h.stowage(&["plugins", "install", &url]);
    assert_eq!(o.status.code(), Some(7), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--sha256"));

    let wrong = Sha256Digest::of_reader(&b"x"[..]).unwrap().to_string();
    let o = h.stowage(&["plugins", "install", &url, "--sha256", &wrong]);
    assert_eq!(o.status.code(), Some(7), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&wrong) && err.contains(&h.digest.to_string()),
        "{err}"
    );
    assert!(!h.path().join("plugins/stowage-plugin-testkit").exists());

    let o = h.stowage(&[
        "plugins",
        "install",
        "http://example.invalid/p",
        "--sha256",
        &wrong,
    ]);
    assert_eq!(o.status.code(), Some(7), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("https://"));

    let digest = h.digest.to_string();
    let o = h.stowage(&[
        "--output", "json", "plugins", "install", &url, "--sha256", &digest, "--name", "dl",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["sha256"], digest);
    assert_eq!(v["name"], "dl");
    assert!(h.path().join("plugins/stowage-plugin-dl").exists());
    // Nothing left behind but the store and the link.
    let mut names: Vec<String> = std::fs::read_dir(h.path().join("plugins"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, [".store", "stowage-plugin-dl"]);
}

/// Runs one operation on a testkit backend and returns the environment it saw.
fn plugin_env(h: &Home, backend_lines: &str) -> String {
    let env_file = h.path().join("env");
    let _ = std::fs::remove_file(&env_file);
    h.config(&format!(
        "[storage.e]\npath = \"{}\"\n{backend_lines}\n[storage.e.config]\nroot = \"{}\"\nenv-file = \"{}\"\n",
        h.plugin.display(),
        h.path().join("data").display(),
        env_file.display()
    ));
    let o = h.stowage_with(
        &["storage", "count", "c", "-b", "e"],
        &[
            ("STOWAGE_LEASE_TOKEN", "lease-token-1234"),
            ("STOWAGE_SOMETHING", "own-variable"),
            ("PLAIN_VAR", "plain"),
            ("AWS_REGION", "eu-west-1"),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    std::fs::read_to_string(env_file).unwrap()
}

#[test]
fn by_default_plugins_get_the_hosts_environment_without_stowage_variables() {
    let h = Home::new();
    let env = plugin_env(&h, "env = { EXTRA = \"from-config\" }");
    for present in [
        "PLAIN_VAR=plain\n",
        "AWS_REGION=eu-west-1\n",
        "EXTRA=from-config\n",
        "STOWAGE_PLUGIN_MAGIC_COOKIE=",
        "STOWAGE_HOME=",
        "STOWAGE_PLUGIN_DATA_DIR=",
        "STOWAGE_HOST_PID=",
        "PATH=",
    ] {
        assert!(env.contains(present), "{present} missing:\n{env}");
    }
    assert!(!env.contains("STOWAGE_LEASE_TOKEN"), "{env}");
    assert!(!env.contains("STOWAGE_SOMETHING"), "{env}");
}

#[test]
fn env_allow_passes_only_the_listed_host_variables() {
    let h = Home::new();
    let env = plugin_env(
        &h,
        "env-allow = [\"AWS_*\", \"STOWAGE_SOMETHING\"]\nenv = { EXTRA = \"from-config\" }",
    );
    let names: Vec<&str> = env
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, _)| k)
        .collect();
    let mut expected = vec![
        "AWS_REGION",
        "EXTRA",
        "STOWAGE_HOME",
        "STOWAGE_HOST_PID",
        "STOWAGE_PLUGIN_DATA_DIR",
        "STOWAGE_PLUGIN_LOG",
        "STOWAGE_PLUGIN_MAGIC_COOKIE",
        "STOWAGE_PROTOCOL_VERSIONS",
        "STOWAGE_SOMETHING",
    ];
    // Whatever other AWS_* variables the test's own environment holds pass too.
    let inherited: Vec<String> = std::env::vars()
        .map(|(k, _)| k)
        .filter(|k| k.starts_with("AWS_") && k != "AWS_REGION")
        .collect();
    expected.extend(inherited.iter().map(String::as_str));
    expected.sort();
    assert_eq!(names, expected, "{env}");
}

/// A minisign keypair made for the test: its public key (base64) and key id (as minisign
/// prints it), and a signer.
struct Signer {
    kp: minisign::KeyPair,
    public: String,
    id: String,
}

impl Signer {
    fn new() -> Signer {
        let kp = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
        let public = kp.pk.to_base64();
        let id = format!(
            "{:016X}",
            u64::from_le_bytes(kp.pk.keynum().try_into().unwrap())
        );
        Signer { kp, public, id }
    }

    /// The text of a `.minisig` of `bytes`.
    fn sign(&self, bytes: &[u8]) -> String {
        minisign::sign(
            Some(&self.kp.pk),
            &self.kp.sk,
            bytes,
            Some("release 1.2.3 of testkit"),
            None,
        )
        .unwrap()
        .into_string()
    }
}

fn nothing_installed(h: &Home) {
    let plugins = h.path().join("plugins");
    assert!(
        std::fs::symlink_metadata(plugins.join("stowage-plugin-testkit")).is_err(),
        "a link was made"
    );
    let store: Vec<_> = std::fs::read_dir(plugins.join(".store"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(store.is_empty(), "{store:?}");
}

#[test]
fn with_a_configured_key_an_install_needs_a_good_signature() {
    let h = Home::new();
    let signer = Signer::new();
    h.config(&format!("plugin-signing-keys = [\"{}\"]\n", signer.public));
    let sig_path = format!("{}.minisig", h.plugin.display());
    let source = h.plugin.to_str().unwrap();

    // No signature beside the binary: refused, naming the file and the key.
    let o = h.stowage(&["plugins", "install", source]);
    assert_eq!(o.status.code(), Some(7), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&sig_path), "{err}");
    assert!(err.contains(&signer.id), "{err}");
    assert!(err.contains("nothing was installed"), "{err}");
    nothing_installed(&h);

    // A signature of other bytes (the binary was tampered with after signing): refused.
    let mut tampered = std::fs::read(&h.plugin).unwrap();
    tampered.extend_from_slice(b"tampered");
    std::fs::write(&sig_path, signer.sign(&tampered)).unwrap();
    let o = h.stowage(&["plugins", "install", source]);
    assert_eq!(o.status.code(), Some(7), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&sig_path), "{err}");
    assert!(err.contains(&signer.id), "{err}");
    assert!(err.contains("does not match"), "{err}");
    nothing_installed(&h);

    // A good signature by a key that is not configured: refused, naming both key ids.
    let other = Signer::new();
    std::fs::write(&sig_path, other.sign(&std::fs::read(&h.plugin).unwrap())).unwrap();
    let o = h.stowage(&["plugins", "install", source]);
    assert_eq!(o.status.code(), Some(7), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&other.id) && err.contains(&signer.id), "{err}");
    assert!(err.contains("not trusted"), "{err}");
    nothing_installed(&h);

    // The right signature: installed, with the key id and trusted comment printed.
    std::fs::write(&sig_path, signer.sign(&std::fs::read(&h.plugin).unwrap())).unwrap();
    let o = h.stowage(&["plugins", "install", source]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains(&format!("signature: verified, key {}", signer.id)),
        "{out}"
    );
    assert!(
        out.contains("trusted comment: release 1.2.3 of testkit"),
        "{out}"
    );
    assert!(h.path().join("plugins/stowage-plugin-testkit").exists());
}

#[test]
fn a_bad_configured_key_names_file_line_and_key() {
    let h = Home::new();
    h.config("\nplugin-signing-keys = [\"RWQnotakey\"]\n");
    let o = h.stowage(&["plugins", "install", h.plugin.to_str().unwrap()]);
    assert!(!o.status.success(), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("config.toml:2"), "{err}");
    assert!(err.contains("plugin-signing-keys"), "{err}");
    nothing_installed(&h);
}

#[test]
fn without_a_key_signatures_are_not_needed() {
    let h = Home::new();
    // A config without keys, and no signature anywhere: installs as before.
    h.config("default-storage = \"filesystem\"\n");
    let o = h.stowage(&["plugins", "install", h.plugin.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(!String::from_utf8_lossy(&o.stdout).contains("signature"));
    assert!(h.path().join("plugins/stowage-plugin-testkit").exists());
    // --signature alone, with no key to check it against, is refused.
    let o = h.stowage(&[
        "plugins",
        "install",
        h.plugin.to_str().unwrap(),
        "--signature",
        "/nonexistent.minisig",
    ]);
    assert_eq!(o.status.code(), Some(7), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--public-key"));
}

/// Serves `files` (path → body) over HTTP on 127.0.0.1, 404 for anything else.
fn serve_files(files: Vec<(&'static str, Vec<u8>)>) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = [0u8; 4096];
            let n = stream.read(&mut request).unwrap_or(0);
            let line = String::from_utf8_lossy(&request[..n]);
            let path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
            let (status, body) = match files.iter().find(|(p, _)| *p == path) {
                Some((_, b)) => ("200 OK", b.clone()),
                None => ("404 Not Found", Vec::new()),
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    format!("http://{addr}")
}

#[test]
fn a_download_is_checked_against_url_minisig_and_public_key() {
    let h = Home::new();
    let signer = Signer::new();
    let binary = std::fs::read(&h.plugin).unwrap();
    let base = serve_files(vec![
        ("/p", binary.clone()),
        ("/p.minisig", signer.sign(&binary).into_bytes()),
        ("/q", binary.clone()),
    ]);
    let digest = h.digest.to_string();

    // /q has no /q.minisig: refused with the key given on the command line.
    let o = h.stowage(&[
        "plugins",
        "install",
        &format!("{base}/q"),
        "--sha256",
        &digest,
        "--public-key",
        &signer.public,
    ]);
    assert_eq!(o.status.code(), Some(7), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&format!("{base}/q.minisig")), "{err}");
    assert!(err.contains(&signer.id), "{err}");
    nothing_installed(&h);

    // --signature points elsewhere: /q verified by /p's signature (the same bytes).
    let o = h.stowage(&[
        "--output",
        "json",
        "plugins",
        "install",
        &format!("{base}/q"),
        "--sha256",
        &digest,
        "--public-key",
        &signer.public,
        "--signature",
        &format!("{base}/p.minisig"),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["signature"]["key_id"], signer.id.as_str());
    assert_eq!(
        v["signature"]["trusted_comment"],
        "release 1.2.3 of testkit"
    );

    // The default: URL + .minisig.
    let o = h.stowage(&[
        "plugins",
        "install",
        &format!("{base}/p"),
        "--sha256",
        &digest,
        "--public-key",
        &signer.public,
        "--name",
        "dl",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(h.path().join("plugins/stowage-plugin-dl").exists());
}
