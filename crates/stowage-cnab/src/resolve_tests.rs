//! Resolving sets on the built-ins: host sources in-process, secrets by backend.

use stowage_host::protocol::{ErrorCode, SecretBytes};
use stowage_host::{ConfigSource, Stowage};

use crate::{Format, SetKind, parse, resolve};

fn stowage(home: &std::path::Path) -> Stowage {
    Stowage::open(&ConfigSource {
        explicit: None,
        home: Some(home.to_owned()),
    })
    .unwrap()
}

#[tokio::test]
async fn every_source_kind_resolves_and_every_failure_is_reported() {
    let home = tempfile::tempdir().unwrap();
    let stowage = stowage(home.path());
    let secrets = stowage.secrets(None).unwrap();
    secrets
        .put("db/password", SecretBytes::from("from-default"))
        .await
        .unwrap();
    let file = home.path().join("token");
    std::fs::write(&file, "from-file").unwrap();
    // SAFETY: the variable is unique to this test and set before anything reads it.
    unsafe { std::env::set_var("STOWAGE_CNAB_TEST_TOKEN", "from-env") };
    let text = format!(
        "name: prod\ncredentials:\n\
         - {{name: a, source: {{env: STOWAGE_CNAB_TEST_TOKEN}}}}\n\
         - {{name: b, source: {{path: {}}}}}\n\
         - {{name: c, source: {{command: echo from-command}}}}\n\
         - {{name: d, source: {{value: from-value}}}}\n\
         - {{name: e, source: {{secret: db/password}}}}\n\
         - {{name: f, source: {{secret: 'host:value:via-host'}}}}\n\
         - {{name: g, source: {{env: STOWAGE_CNAB_TEST_UNSET}}}}\n\
         - {{name: h, source: {{command: 'false'}}}}\n\
         - {{name: i, source: {{secret: missing}}}}\n",
        file.display()
    );
    let set = parse(&text, Format::Yaml, SetKind::Credentials).unwrap();
    let resolution = resolve(&set, &stowage).await;
    let values: Vec<Option<String>> = resolution
        .entries
        .iter()
        .map(|e| {
            e.outcome
                .as_ref()
                .ok()
                .map(|v| String::from_utf8_lossy(v.expose()).into_owned())
        })
        .collect();
    let want = [
        "from-env",
        "from-file",
        "from-command",
        "from-value",
        "from-default",
        "via-host",
    ];
    for (got, want) in values.iter().zip(want) {
        assert_eq!(got.as_deref(), Some(want));
    }
    assert_eq!(resolution.entries[4].backend.as_deref(), Some("filesystem"));
    assert_eq!(resolution.entries[5].backend.as_deref(), Some("host"));

    let failed: Vec<&str> = resolution
        .failures()
        .map(|(e, _)| e.name.as_str())
        .collect();
    assert_eq!(failed, ["g", "h", "i"]);
    let (_, unset) = resolution.failures().next().unwrap();
    assert_eq!(unset.code, ErrorCode::NotFound);
    let report = resolution.failure_report(&set).unwrap();
    assert!(
        report.starts_with("3 of 9 credentials of credential set `prod` could not be resolved:"),
        "{report}"
    );
    assert!(report.contains("credential `g` (env STOWAGE_CNAB_TEST_UNSET): environment variable STOWAGE_CNAB_TEST_UNSET is not set"), "{report}");
    assert!(
        report.contains("credential `h` (command false)"),
        "{report}"
    );
    assert!(
        report.contains("credential `i` (secret missing)"),
        "{report}"
    );
    for secret in want {
        assert!(!report.contains(secret), "{report}");
    }
    // Debug output shows references (which, for `command: echo …` or a `host:value:`
    // secret, spell their value by construction) but never a resolved value.
    let debug = format!("{resolution:?}");
    for secret in ["from-env", "from-file", "from-value", "from-default"] {
        assert!(!debug.contains(secret), "{debug}");
    }
}

#[tokio::test]
async fn an_unknown_backend_prefix_is_a_default_backend_key() {
    let home = tempfile::tempdir().unwrap();
    let stowage = stowage(home.path());
    assert_eq!(
        crate::resolve::secret_target("vault:db/pw", &stowage),
        ("filesystem".to_owned(), "vault:db/pw".to_owned())
    );
    assert_eq!(
        crate::resolve::secret_target("host:env:X", &stowage),
        ("host".to_owned(), "env:X".to_owned())
    );
}
