//! Config parsing: errors located by file, line and key; durations, roots, interpolation.

use super::*;

fn parse(text: &str) -> Result<Config> {
    Config::parse(
        text,
        Some(Path::new("/etc/stowage.toml")),
        PathBuf::from("/h"),
    )
}

fn config_error(text: &str) -> ConfigError {
    match parse(text) {
        Err(Error::Config(e)) => e,
        other => panic!("expected a config error, got {other:?}"),
    }
}

#[test]
fn empty_config_means_builtins() {
    let c = parse("").unwrap();
    assert_eq!(c.default_storage, "filesystem");
    assert_eq!(c.default_secrets, "filesystem");
    assert!(c.secrets.contains_key("host"));
}

#[test]
fn a_full_backend_parses() {
    let c = parse(
        r#"
default-storage = "team"

[storage.team]
plugin = "blob"
timeout = "5s"
keep-alive = "30s"
args = ["-v"]
[storage.team.config]
url = "memory://"
nested = { a = [1, "x"] }
"#,
    )
    .unwrap();
    let b = c.backend(Role::Storage, None).unwrap();
    assert_eq!(b.kind, BackendKind::Plugin("blob".into()));
    assert_eq!(b.timeout, Duration::from_secs(5));
    assert_eq!(b.keep_alive, Some(Duration::from_secs(30)));
    assert_eq!(b.settings.0["url"].as_str(), Some("memory://"));
}

#[test]
fn unknown_keys_name_file_line_and_key() {
    let e = config_error("[storage.team]\nplugin = \"blob\"\ntmeout = \"5s\"\n");
    assert_eq!(e.line, Some(3));
    assert_eq!(e.key.as_deref(), Some("storage.team.tmeout"));
    assert!(e.message.contains("tmeout"), "{}", e.message);
    assert!(e.to_string().starts_with("/etc/stowage.toml:3: "), "{e}");
}

#[test]
fn wrong_types_and_bad_durations_are_located() {
    let e = config_error("[storage.team]\nplugin = \"blob\"\ntimeout = 5\n");
    assert_eq!(e.line, Some(3));
    let e = config_error("[storage.team]\nplugin = \"blob\"\ntimeout = \"soon\"\n");
    assert_eq!(e.line, Some(3));
    assert_eq!(e.key.as_deref(), Some("storage.team.timeout"));
}

#[test]
fn huge_and_zero_durations_are_located_config_errors() {
    for (text, line) in [
        (
            "[storage.t]\nplugin = \"b\"\ntimeout = \"18446744073709551615s\"\n",
            3,
        ),
        (
            "[storage.t]\nplugin = \"b\"\n\nkeep-alive = \"999999999999999h\"\n",
            4,
        ),
        ("[storage.t]\nplugin = \"b\"\ntimeout = \"25h\"\n", 3),
        ("[storage.t]\nplugin = \"b\"\n\n\ntimeout = \"0s\"\n", 5),
    ] {
        let e = config_error(text);
        assert_eq!(e.line, Some(line), "{text}: {e}");
        assert!(e.key.as_deref().unwrap().starts_with("storage.t."), "{e}");
    }
    assert_eq!(
        parse("[storage.t]\nplugin = \"b\"\ntimeout = \"24h\"\n")
            .unwrap()
            .storage["t"]
            .timeout,
        MAX_DURATION
    );
}

#[test]
fn builtin_roots_are_relative_to_the_config_file_and_never_empty() {
    let c = parse(
        "[storage.local]\nbuiltin = \"filesystem\"\n[storage.local.config]\nroot = \"data\"\n",
    )
    .unwrap();
    assert_eq!(
        c.storage["local"].settings.0["root"].as_str(),
        Some("/etc/data")
    );
    let c = parse(
        "[storage.local]\nbuiltin = \"filesystem\"\n[storage.local.config]\nroot = \"/srv/x\"\n",
    )
    .unwrap();
    assert_eq!(
        c.storage["local"].settings.0["root"].as_str(),
        Some("/srv/x")
    );
    let e = config_error(
        "[storage.local]\nbuiltin = \"filesystem\"\n[storage.local.config]\n\nroot = \"\"\n",
    );
    assert_eq!(e.line, Some(5), "{e}");
    assert_eq!(e.key.as_deref(), Some("storage.local.config.root"));
    let e = config_error("[secrets.x]\npath = \"\"\n");
    assert!(e.message.contains("empty"), "{e}");
}

#[test]
fn a_default_naming_no_backend_is_an_error() {
    let e = config_error("\n\ndefault-secrets = \"vault\"\n");
    assert_eq!(e.line, Some(3));
    assert_eq!(e.key.as_deref(), Some("default-secrets"));
    assert!(e.message.contains("vault"));
}

#[test]
fn exactly_one_source_per_backend() {
    let e = config_error("[secrets.x]\nplugin = \"a\"\npath = \"/b\"\n");
    assert!(e.message.contains("exactly one"), "{}", e.message);
}

#[test]
fn env_interpolation() {
    // SAFETY: test-only variable name, not read concurrently by other tests.
    unsafe { std::env::set_var("STOWAGE_TEST_BUCKET", "b1") };
    let c = parse("[storage.t]\nplugin = \"blob\"\n[storage.t.config]\nurl = \"s3://${env:STOWAGE_TEST_BUCKET}/x $${literal}\"\n").unwrap();
    assert_eq!(
        c.storage["t"].settings.0["url"].as_str(),
        Some("s3://b1/x ${literal}")
    );
    let e = config_error(
        "[storage.t]\nplugin = \"blob\"\n\n[storage.t.config]\nurl = \"${env:STOWAGE_TEST_UNSET_VAR}\"\n",
    );
    assert_eq!(e.line, Some(5));
    assert!(e.message.contains("STOWAGE_TEST_UNSET_VAR"));
}

#[test]
fn relative_paths_resolve_against_the_config_file() {
    let c = parse("[secrets.x]\npath = \"bin/p\"\n").unwrap();
    assert_eq!(
        c.secrets["x"].kind,
        BackendKind::Path(PathBuf::from("/etc/bin/p"))
    );
}

#[test]
fn pins_and_env_allow_are_validated_with_line_and_key() {
    let hex = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    let c = parse(&format!(
        "[storage.t]\nplugin = \"blob\"\nsha256 = \"{}\"\nenv-allow = [\"AWS_*\", \"HOME\"]\n",
        hex.to_uppercase()
    ))
    .unwrap();
    let b = c.backend(Role::Storage, Some("t")).unwrap();
    assert_eq!(b.sha256.unwrap().to_string(), hex);
    assert_eq!(
        b.env_allow.as_deref(),
        Some(&["AWS_*".to_owned(), "HOME".to_owned()][..])
    );

    let e = config_error("[storage.t]\nplugin = \"blob\"\nsha256 = \"abc\"\n");
    assert_eq!(
        (e.line, e.key.as_deref()),
        (Some(3), Some("storage.t.sha256"))
    );
    assert!(e.message.contains("64 hex digits"), "{}", e.message);

    let e = config_error(&format!(
        "[storage.t]\nbuiltin = \"filesystem\"\nsha256 = \"{hex}\"\n"
    ));
    assert_eq!(e.key.as_deref(), Some("storage.t.sha256"));
    assert!(e.message.contains("built-in"), "{}", e.message);

    let e = config_error("[secrets.t]\nplugin = \"x\"\n\nenv-allow = [\"HOME\",\n  \"A-B\"]\n");
    assert_eq!(
        (e.line, e.key.as_deref()),
        (Some(5), Some("secrets.t.env-allow"))
    );
    assert!(e.message.contains("A-B"), "{}", e.message);
}

#[test]
fn plugin_signing_keys_parse_and_a_bad_one_names_file_line_and_key() {
    let key = "RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3";
    let c = parse(&format!("plugin-signing-keys = [\"{key}\"]\n")).unwrap();
    assert_eq!(c.plugin_signing_keys.len(), 1);
    assert_eq!(
        c.plugin_signing_keys[0].id().to_string(),
        "E7620F1842B4E81F"
    );
    assert!(parse("").unwrap().plugin_signing_keys.is_empty());

    let e = config_error(&format!(
        "default-storage = \"filesystem\"\nplugin-signing-keys = [\n  \"{key}\",\n  \"RWQnope\",\n]\n"
    ));
    assert_eq!(e.line, Some(4), "{e}");
    assert_eq!(e.key.as_deref(), Some("plugin-signing-keys"));
    assert!(e.message.contains("RWQnope"), "{}", e.message);
    assert!(e.to_string().starts_with("/etc/stowage.toml:4: "), "{e}");
}
