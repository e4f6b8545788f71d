//! Where values go: by the bundle, or by name without one.

use std::path::PathBuf;

use stowage_host::protocol::SecretBytes;

use crate::bundle::Bundle;
use crate::delivery::{env_name, plan};
use crate::resolve::{Resolution, ResolvedEntry};
use crate::set::{SetKind, Source};

fn resolved(values: &[(&str, &str)]) -> Resolution {
    Resolution {
        entries: values
            .iter()
            .map(|(n, v)| ResolvedEntry {
                name: (*n).to_owned(),
                source: Source::Env("X".into()),
                backend: None,
                outcome: Ok(SecretBytes::from(*v)),
            })
            .collect(),
    }
}

fn text(v: &SecretBytes) -> &str {
    std::str::from_utf8(v.expose()).unwrap()
}

#[test]
fn without_a_bundle_entries_become_variables_named_after_them() {
    assert_eq!(env_name("db-password"), "DB_PASSWORD");
    assert_eq!(env_name("kube.config"), "KUBE_CONFIG");
    assert_eq!(env_name("1st"), "_1ST");
    let creds = resolved(&[("db-password", "pw")]);
    let params = resolved(&[("port", "80")]);
    let d = plan(
        &[
            (SetKind::Credentials, &creds),
            (SetKind::Parameters, &params),
        ],
        None,
        &Default::default(),
    )
    .unwrap();
    assert_eq!(text(&d.env["DB_PASSWORD"]), "pw");
    assert_eq!(text(&d.env["PORT"]), "80");
    assert!(d.files.is_empty());
}

#[test]
fn two_entries_for_one_variable_are_refused() {
    let creds = resolved(&[("port", "a")]);
    let params = resolved(&[("PORT", "b")]);
    let err = plan(
        &[
            (SetKind::Credentials, &creds),
            (SetKind::Parameters, &params),
        ],
        None,
        &Default::default(),
    )
    .unwrap_err();
    assert_eq!(
        err,
        ["parameter `PORT` and credential `port` both go to environment variable PORT"]
    );
}

#[test]
fn with_a_bundle_values_go_where_it_says_with_defaults() {
    let bundle: Bundle = serde_json::from_value(serde_json::json!({
        "name": "b",
        "credentials": {"kube": {"path": "/root/.kube/config", "env": "KUBE"}},
        "parameters": {
            "port": {"definition": "port", "destination": {"env": "PORT"}},
            "cfg": {"definition": "obj", "destination": {"path": "/cnab/app/cfg.json"}},
            "later": {"definition": "port", "destination": {"env": "LATER"}, "applyTo": ["upgrade"]}
        },
        "definitions": {"port": {"type": "integer", "default": 80}, "obj": {"type": "object", "default": {"a": 1}}}
    }))
    .unwrap();
    let creds = resolved(&[("kube", "k")]);
    let params = resolved(&[("port", "8080")]);
    let d = plan(
        &[
            (SetKind::Credentials, &creds),
            (SetKind::Parameters, &params),
        ],
        Some((&bundle, "install")),
        &Default::default(),
    )
    .unwrap();
    assert_eq!(text(&d.env["KUBE"]), "k");
    assert_eq!(text(&d.files[&PathBuf::from("root/.kube/config")]), "k");
    assert_eq!(text(&d.env["PORT"]), "8080");
    assert_eq!(
        text(&d.files[&PathBuf::from("cnab/app/cfg.json")]),
        r#"{"a":1}"#
    );
    assert!(!d.env.contains_key("LATER"), "upgrade only");
}

#[test]
fn a_path_leaving_the_directory_is_refused() {
    let bundle: Bundle = serde_json::from_value(serde_json::json!({
        "credentials": {"k": {"path": "/cnab/../../etc/passwd"}}
    }))
    .unwrap();
    let creds = resolved(&[("k", "v")]);
    let err = plan(
        &[(SetKind::Credentials, &creds)],
        Some((&bundle, "install")),
        &Default::default(),
    )
    .unwrap_err();
    assert!(err[0].contains("leaves the directory"), "{err:?}");
}

#[test]
fn an_env_map_renames_variables() {
    let creds = resolved(&[("db-password", "pw"), ("other", "o")]);
    let map = [("db-password".to_owned(), "PGPASSWORD".to_owned())].into();
    let d = plan(&[(SetKind::Credentials, &creds)], None, &map).unwrap();
    assert_eq!(text(&d.env["PGPASSWORD"]), "pw");
    assert_eq!(text(&d.env["OTHER"]), "o");
    assert!(!d.env.contains_key("DB_PASSWORD"));
}

#[test]
fn a_base64_file_parameter_reaches_its_path_decoded_and_its_variable_as_given() {
    let bundle: Bundle = serde_json::from_value(serde_json::json!({
        "parameters": {
            "cert": {"definition": "file", "destination": {"path": "/cnab/app/cert", "env": "CERT"}},
            "plain": {"definition": "text", "destination": {"path": "/cnab/app/plain"}},
            "seed": {"definition": "seeded", "destination": {"path": "/cnab/app/seed"}}
        },
        "definitions": {
            "file": {"type": "string", "contentEncoding": "base64"},
            "text": {"type": "string"},
            "seeded": {"type": "string", "contentEncoding": "base64", "default": "AAH/"}
        }
    }))
    .unwrap();
    let params = resolved(&[("cert", "aGVsbG8K"), ("plain", "aGVsbG8K")]);
    let d = plan(
        &[(SetKind::Parameters, &params)],
        Some((&bundle, "install")),
        &Default::default(),
    )
    .unwrap();
    assert_eq!(
        d.files[&PathBuf::from("cnab/app/cert")].expose(),
        b"hello\n"
    );
    assert_eq!(text(&d.env["CERT"]), "aGVsbG8K");
    assert_eq!(text(&d.files[&PathBuf::from("cnab/app/plain")]), "aGVsbG8K");
    assert_eq!(
        d.files[&PathBuf::from("cnab/app/seed")].expose(),
        [0, 1, 255]
    );

    let bad = resolved(&[("cert", "???")]);
    let err = plan(
        &[(SetKind::Parameters, &bad)],
        Some((&bundle, "install")),
        &Default::default(),
    )
    .unwrap_err();
    assert_eq!(
        err,
        ["parameter `cert`: the value is not valid base64 (its definition's contentEncoding)"]
    );
}
