//! The `stowage` binary end to end: exit codes, config errors, secrets hygiene, and
//! preconditions that hold between concurrent processes.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

const STOWAGE: &str = env!("CARGO_BIN_EXE_stowage");

fn run(home: &Path, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(STOWAGE)
        .args(args)
        .env("STOWAGE_HOME", home)
        .env_remove("STOWAGE_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn documents_round_trip_with_documented_exit_codes() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let put = run(
        h,
        &[
            "storage",
            "put",
            "installations",
            "wordpress",
            "-g",
            "dev",
            "--if-absent",
        ],
        b"{\"v\":1}",
    );
    assert!(put.status.success(), "{}", stderr(&put));
    let version = stdout(&put).trim().to_owned();

    let get = run(
        h,
        &["storage", "get", "installations", "wordpress", "-g", "dev"],
        b"",
    );
    assert_eq!(get.stdout, b"{\"v\":1}");

    let again = run(
        h,
        &[
            "storage",
            "put",
            "installations",
            "wordpress",
            "-g",
            "dev",
            "--if-absent",
        ],
        b"x",
    );
    assert_eq!(again.status.code(), Some(4), "{}", stderr(&again));
    assert!(stderr(&again).contains("already_exists"));

    let stale = run(
        h,
        &[
            "storage",
            "put",
            "installations",
            "wordpress",
            "-g",
            "dev",
            "--if-version",
            "0-stale",
        ],
        b"x",
    );
    assert_eq!(stale.status.code(), Some(4));

    let ok = run(
        h,
        &[
            "storage",
            "put",
            "installations",
            "wordpress",
            "-g",
            "dev",
            "--if-version",
            &version,
        ],
        b"v2",
    );
    assert!(ok.status.success(), "{}", stderr(&ok));

    let list = run(
        h,
        &[
            "--output",
            "json",
            "storage",
            "list",
            "installations",
            "-g",
            "dev",
        ],
        b"",
    );
    let v: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(v["items"][0]["name"], "wordpress");
    assert_eq!(v["items"][0]["size"], 2);

    let count = run(h, &["storage", "count", "installations", "-g", "dev"], b"");
    assert_eq!(stdout(&count).trim(), "1");

    let missing = run(h, &["storage", "get", "installations", "nope"], b"");
    assert_eq!(missing.status.code(), Some(3));

    let del = run(
        h,
        &[
            "storage",
            "delete",
            "installations",
            "wordpress",
            "-g",
            "dev",
        ],
        b"",
    );
    assert!(del.status.success());
    assert_eq!(
        run(
            h,
            &["storage", "get", "installations", "wordpress", "-g", "dev"],
            b""
        )
        .status
        .code(),
        Some(3)
    );
}

#[test]
fn secret_values_are_shown_only_with_reveal_and_stored_0600() {
    use std::os::unix::fs::PermissionsExt as _;
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let set = run(
        h,
        &["secrets", "set", "db-password"],
        b"hunter2-very-secret",
    );
    assert!(set.status.success(), "{}", stderr(&set));
    assert!(!stdout(&set).contains("hunter2") && !stderr(&set).contains("hunter2"));

    let get = run(h, &["-vvv", "secrets", "get", "db-password"], b"");
    assert!(get.status.success());
    assert!(!stdout(&get).contains("hunter2"), "{}", stdout(&get));
    assert!(!stderr(&get).contains("hunter2"), "{}", stderr(&get));
    assert!(stdout(&get).contains("--reveal"));

    let reveal = run(h, &["secrets", "get", "db-password", "--reveal"], b"");
    assert_eq!(reveal.stdout, b"hunter2-very-secret");

    let list = run(h, &["secrets", "list"], b"");
    assert!(stdout(&list).contains("db-password") && !stdout(&list).contains("hunter2"));

    let dir = h.join("secrets");
    assert_eq!(
        std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    for entry in std::fs::read_dir(&dir).unwrap() {
        let mode = entry.unwrap().metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    let host = run(
        h,
        &[
            "secrets",
            "get",
            "-b",
            "host",
            "value:abc",
            "env:STOWAGE_SURELY_UNSET",
        ],
        b"",
    );
    assert_eq!(host.status.code(), Some(3), "{}", stderr(&host));
    assert!(stdout(&host).contains("value:abc: resolved (3 bytes"));
}

#[test]
fn config_errors_name_file_line_and_key() {
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join("config.toml");
    std::fs::write(
        &config,
        "[storage.team]\nplugin = \"blob\"\ntimout = \"5s\"\n",
    )
    .unwrap();
    let out = run(home.path(), &["storage", "list", "claims"], b"");
    assert_eq!(out.status.code(), Some(5));
    let err = stderr(&out);
    assert!(err.contains(&format!("{}:3:", config.display())), "{err}");
    assert!(err.contains("storage.team.timout"), "{err}");

    std::fs::write(&config, "default-storage = \"nowhere\"\n").unwrap();
    let out = run(home.path(), &["storage", "list", "claims"], b"");
    assert_eq!(out.status.code(), Some(5));
    assert!(
        stderr(&out).contains(":1: key `default-storage`"),
        "{}",
        stderr(&out)
    );

    let out = run(
        home.path(),
        &["--config", "/nonexistent/stowage.toml", "config", "show"],
        b"",
    );
    assert_eq!(out.status.code(), Some(5));
    assert!(stderr(&out).contains("/nonexistent/stowage.toml"));
}

#[test]
fn config_show_never_prints_credentials() {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(
        home.path().join("config.toml"),
        "[storage.team]\nplugin = \"blob\"\nenv = { AWS_SECRET_ACCESS_KEY = \"plaintext-cred-1\" }\n[storage.team.config]\naccount-key = \"plaintext-cred-2\"\nurl = \"s3://b\"\n",
    )
    .unwrap();
    let out = run(home.path(), &["config", "show", "--source"], b"");
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        !text.contains("plaintext-cred-1") && !text.contains("plaintext-cred-2"),
        "{text}"
    );
    assert!(
        text.contains("team") && text.contains("plugin:blob"),
        "{text}"
    );
    let json = run(home.path(), &["--output", "json", "config", "show"], b"");
    assert!(!stdout(&json).contains("plaintext-cred"));
}

#[test]
fn config_init_writes_a_starter_that_parses() {
    let home = tempfile::tempdir().unwrap();
    let out = run(home.path(), &["config", "init"], b"");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(home.path().join("config.toml").exists());
    let again = run(home.path(), &["config", "init"], b"");
    assert_eq!(again.status.code(), Some(5));
    let check = run(home.path(), &["config", "check"], b"");
    assert!(
        check.status.success(),
        "{}{}",
        stdout(&check),
        stderr(&check)
    );
}

#[test]
fn a_missing_plugin_is_a_plugin_error() {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(
        home.path().join("config.toml"),
        "[secrets.v]\nplugin = \"nope\"\n",
    )
    .unwrap();
    let out = run(home.path(), &["secrets", "get", "-b", "v", "x"], b"");
    assert_eq!(out.status.code(), Some(6));
    assert!(stderr(&out).contains("stowage-plugin-nope"));
}

/// Two processes race conditional writes on the built-in filesystem store: each round,
/// exactly one wins and the other gets a conflict (exit 4).
#[test]
fn concurrent_conditional_writes_from_two_processes_have_one_winner() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let first = run(h, &["storage", "put", "locks", "install"], b"0");
    let mut version = stdout(&first).trim().to_owned();
    for round in 0..20 {
        let spawn = |who: &str| {
            let mut child = Command::new(STOWAGE)
                .args([
                    "storage",
                    "put",
                    "locks",
                    "install",
                    "--if-version",
                    &version,
                ])
                .env("STOWAGE_HOME", h)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(who.as_bytes())
                .unwrap();
            child
        };
        let (a, b) = (spawn("a"), spawn("b"));
        let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
        let codes = [a.status.code().unwrap(), b.status.code().unwrap()];
        assert!(
            codes == [0, 4] || codes == [4, 0],
            "round {round}: exit codes {codes:?}\n{}\n{}",
            stderr(&a),
            stderr(&b)
        );
        let winner = if codes[0] == 0 { &a } else { &b };
        version = stdout(winner).trim().to_owned();
        let stored = run(h, &["storage", "get", "locks", "install"], b"");
        assert_eq!(stored.stdout, if codes[0] == 0 { b"a" } else { b"b" });
    }
    // Creation races too: exactly one --if-absent wins.
    let spawn = || {
        Command::new(STOWAGE)
            .args(["storage", "put", "locks", "fresh", "--if-absent"])
            .env("STOWAGE_HOME", h)
            .stdin(Stdio::null())
            .output()
    };
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(spawn);
        let b = s.spawn(spawn);
        (a.join().unwrap().unwrap(), b.join().unwrap().unwrap())
    });
    let mut codes = [a.status.code().unwrap(), b.status.code().unwrap()];
    codes.sort();
    assert_eq!(codes, [0, 4]);
}

#[test]
fn config_show_redacts_by_where_a_value_sits() {
    let home = tempfile::tempdir().unwrap();
    let canary = "c4n4ry";
    std::fs::write(
        home.path().join("config.toml"),
        format!(
            "[storage.team]\nplugin = \"blob\"\nargs = [\"--key\", \"{canary}-arg\"]\n\
             env = {{ TOKEN = \"{canary}-env\" }}\n[storage.team.config]\n\
             url = \"s3://u:{canary}-url@b/x\"\napi-key = \"{canary}-api\"\npasswd = \"{canary}-pw\"\n\
             auth = \"{canary}-auth\"\nregion = \"eu-west-1\"\n[secrets.vault]\nplugin = \"x\"\n\
             timeout = \"9s\"\n[secrets.vault.config]\nvault-name = \"contoso\"\n"
        ),
    )
    .unwrap();
    for args in [
        &["config", "show", "--source"][..],
        &["--output", "json", "config", "show", "--source"][..],
        &["--output", "json", "config", "show"][..],
    ] {
        let out = run(home.path(), args, b"");
        assert!(out.status.success(), "{}", stderr(&out));
        let text = stdout(&out);
        assert!(!text.contains(canary), "{args:?}:\n{text}");
        if args.contains(&"--source") {
            // What is not a credential is still shown, secrets backends included.
            for kept in ["eu-west-1", "contoso", "9s", "s3://u:<redacted>@b/x"] {
                assert!(text.contains(kept), "{args:?}: {kept} missing:\n{text}");
            }
        }
    }
}

#[test]
fn huge_durations_are_config_errors_not_panics() {
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join("config.toml");
    for value in ["18446744073709551615s", "999999999999999h", "0s"] {
        std::fs::write(
            &config,
            format!("[storage.t]\nplugin = \"testkit\"\ntimeout = \"{value}\"\n"),
        )
        .unwrap();
        let out = run(home.path(), &["storage", "list", "claims", "-b", "t"], b"");
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(5), "{value}: {err}");
        assert!(
            err.contains(&format!("{}:3:", config.display())),
            "{value}: {err}"
        );
        assert!(err.contains("storage.t.timeout"), "{err}");
    }
}

#[test]
fn secrets_set_reads_values_the_way_people_mean_them() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    // `echo pw | stowage secrets set k`: echo's newline is not part of the secret.
    assert!(run(h, &["secrets", "set", "k"], b"pw\n").status.success());
    assert_eq!(
        run(h, &["secrets", "get", "k", "--reveal"], b"").stdout,
        b"pw"
    );
    assert!(
        run(h, &["secrets", "set", "crlf"], b"pw\r\n")
            .status
            .success()
    );
    assert_eq!(
        run(h, &["secrets", "get", "crlf", "--reveal"], b"").stdout,
        b"pw"
    );
    // Only one newline goes; a file's bytes are kept exactly.
    assert!(
        run(h, &["secrets", "set", "two"], b"pw\n\n")
            .status
            .success()
    );
    assert_eq!(
        run(h, &["secrets", "get", "two", "--reveal"], b"").stdout,
        b"pw\n"
    );
    let file = h.join("value");
    std::fs::write(&file, b"exact\n").unwrap();
    let from_file = run(
        h,
        &["secrets", "set", "f", "--from-file", file.to_str().unwrap()],
        b"",
    );
    assert!(from_file.status.success(), "{}", stderr(&from_file));
    assert_eq!(
        run(h, &["secrets", "get", "f", "--reveal"], b"").stdout,
        b"exact\n"
    );
    let redirected = Command::new(STOWAGE)
        .args(["secrets", "set", "r"])
        .env("STOWAGE_HOME", h)
        .env_remove("STOWAGE_CONFIG")
        .stdin(std::fs::File::open(&file).unwrap())
        .output()
        .unwrap();
    assert!(redirected.status.success());
    assert_eq!(
        run(h, &["secrets", "get", "r", "--reveal"], b"").stdout,
        b"exact\n"
    );

    // An empty value is refused unless asked for.
    let empty = run(h, &["secrets", "set", "e"], b"");
    assert_eq!(empty.status.code(), Some(7), "{}", stderr(&empty));
    assert!(
        stderr(&empty).contains("--allow-empty"),
        "{}",
        stderr(&empty)
    );
    assert_eq!(
        run(h, &["secrets", "get", "e"], b"").status.code(),
        Some(3),
        "nothing was stored"
    );
    assert!(
        run(h, &["secrets", "set", "e", "--allow-empty"], b"")
            .status
            .success()
    );

    // Values above the contract's limit are refused by every backend, built-ins included.
    std::fs::write(&file, vec![b'x'; 9 << 20]).unwrap();
    let big = run(
        h,
        &[
            "secrets",
            "set",
            "big",
            "--from-file",
            file.to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(big.status.code(), Some(7), "{}", stderr(&big));

    // Several values at once: text as is, anything else as marked base64.
    std::fs::write(&file, [0xff, 0x00, 0xfe]).unwrap();
    run(
        h,
        &[
            "secrets",
            "set",
            "bin",
            "--from-file",
            file.to_str().unwrap(),
        ],
        b"",
    );
    let both = run(h, &["secrets", "get", "k", "bin", "--reveal"], b"");
    assert_eq!(stdout(&both), "k=pw\nbin=base64:/wD+\n");
}

#[test]
fn a_secrets_directory_open_to_others_is_warned_about() {
    use std::os::unix::fs::PermissionsExt as _;
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    assert!(run(h, &["secrets", "set", "k"], b"v").status.success());
    let dir = h.join("secrets");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let list = run(h, &["secrets", "list"], b"");
    assert!(list.status.success());
    assert!(stderr(&list).contains("chmod 700"), "{}", stderr(&list));
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if !path.file_name().unwrap().to_str().unwrap().starts_with('.') {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
    let get = run(h, &["secrets", "get", "k"], b"");
    assert!(stderr(&get).contains("chmod 600"), "{}", stderr(&get));
}
