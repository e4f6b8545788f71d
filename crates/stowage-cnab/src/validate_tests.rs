//! Parameter values against their JSON Schema definitions: one test per rule, several
//! problems at once, and sensitive values never in a message.

use stowage_host::protocol::SecretBytes;

use crate::bundle::Bundle;
use crate::resolve::{Resolution, ResolvedEntry};
use crate::set::Source;
use crate::validate::check_parameters;

fn bundle() -> Bundle {
    serde_json::from_value(serde_json::json!({
        "name": "app",
        "parameters": {
            "port": {"definition": "port", "required": true},
            "password": {"definition": "password", "applyTo": ["install"]},
            "tier": {"definition": "tier"},
            "debug": {"definition": "flag"},
            "ratio": {"definition": "ratio"},
            "name": {"definition": "name"},
            "tags": {"definition": "tags"},
            "upgrade-only": {"definition": "name", "applyTo": ["upgrade"]}
        },
        "definitions": {
            "port": {"type": "integer", "minimum": 10, "maximum": 10240, "default": 8080},
            "password": {"type": "string", "minLength": 12, "writeOnly": true},
            "tier": {"type": "string", "enum": ["free", "paid"], "default": "free"},
            "flag": {"type": "boolean"},
            "ratio": {"type": "number", "exclusiveMaximum": 1},
            "name": {"type": "string", "pattern": "^[a-z]+$", "maxLength": 8},
            "tags": {"type": "array", "items": {"type": "string"}}
        }
    }))
    .unwrap()
}

fn given(values: &[(&str, &str)]) -> Resolution {
    Resolution {
        entries: values
            .iter()
            .map(|(name, value)| ResolvedEntry {
                name: (*name).to_owned(),
                source: Source::Env("X".into()),
                backend: None,
                outcome: Ok(SecretBytes::from(*value)),
            })
            .collect(),
    }
}

fn problems(values: &[(&str, &str)]) -> Vec<String> {
    check_parameters(&bundle(), "install", &given(values)).problems
}

#[test]
fn good_values_convert_and_pass() {
    let check = check_parameters(
        &bundle(),
        "install",
        &given(&[
            ("port", "443"),
            ("password", "correct horse battery"),
            ("debug", "true"),
            ("ratio", "0.5"),
            ("name", "web"),
            ("tags", r#"["a","b"]"#),
        ]),
    );
    assert!(check.problems.is_empty(), "{:?}", check.problems);
    assert_eq!(
        check.defaults,
        [("tier".to_owned(), serde_json::json!("free"))]
    );
}

#[test]
fn a_value_of_the_wrong_type_names_parameter_value_and_rule() {
    assert_eq!(
        problems(&[("port", "http")]),
        ["parameter `port`: `http` is not an integer (rule `type` of definition `port`)"]
    );
    assert_eq!(problems(&[("debug", "yes")]).len(), 1);
    assert_eq!(problems(&[("tags", "a,b")]).len(), 1);
}

#[test]
fn minimum_and_maximum() {
    let p = problems(&[("port", "5")]);
    assert_eq!(p.len(), 1);
    assert!(
        p[0].starts_with("parameter `port`: 5 is less than the minimum of 10"),
        "{p:?}"
    );
    assert!(
        p[0].ends_with("(rule `minimum` of definition `port`)"),
        "{p:?}"
    );
    assert!(problems(&[("port", "99999")])[0].contains("rule `maximum`"));
}

#[test]
fn exclusive_maximum() {
    assert!(problems(&[("ratio", "1")])[0].contains("rule `exclusiveMaximum`"));
}

#[test]
fn enum_pattern_and_lengths() {
    assert!(problems(&[("tier", "gold")])[0].contains("rule `enum`"));
    assert!(problems(&[("name", "Web")])[0].contains("rule `pattern`"));
    assert!(problems(&[("name", "abcdefghij")])[0].contains("rule `maxLength`"));
}

#[test]
fn a_sensitive_value_is_never_in_a_message() {
    let p = problems(&[("password", "hunter2")]);
    assert_eq!(
        p,
        ["parameter `password`: the value breaks rule `minLength` of definition `password`"]
    );
    let p = check_parameters(
        &serde_json::from_value::<Bundle>(serde_json::json!({
            "parameters": {"pin": {"definition": "pin"}},
            "definitions": {"pin": {"type": "integer", "writeOnly": true}}
        }))
        .unwrap(),
        "install",
        &given(&[("pin", "s3cr3t")]),
    )
    .problems;
    assert_eq!(p.len(), 1);
    assert!(!p[0].contains("s3cr3t"), "{p:?}");
}

#[test]
fn every_problem_is_reported_at_once_and_other_actions_are_skipped() {
    let p = problems(&[
        ("port", "5"),
        ("tier", "gold"),
        ("name", "X"),
        ("upgrade-only", "BAD"),
    ]);
    assert_eq!(p.len(), 3, "{p:?}");
}

#[test]
fn defaults_are_validated_and_applied_only_when_not_given() {
    let check = check_parameters(&bundle(), "install", &given(&[("tier", "paid")]));
    assert_eq!(
        check.defaults,
        [("port".to_owned(), serde_json::json!(8080))]
    );
}

fn file_bundle() -> Bundle {
    serde_json::from_value(serde_json::json!({
        "parameters": {
            "cert": {"definition": "file", "destination": {"path": "/cnab/app/cert"}},
            "key": {"definition": "secret-file", "destination": {"path": "/cnab/app/key"}},
            "odd": {"definition": "odd"}
        },
        "definitions": {
            "file": {"type": "string", "contentEncoding": "base64"},
            "secret-file": {"type": "string", "contentEncoding": "base64", "writeOnly": true},
            "odd": {"type": "string", "contentEncoding": "quoted-printable"}
        }
    }))
    .unwrap()
}

#[test]
fn content_encoding_base64_accepts_base64_with_or_without_padding_and_line_breaks() {
    let check = check_parameters(
        &file_bundle(),
        "install",
        &given(&[("cert", "aGVsbG8gd29ybGQ="), ("key", "aGVs\nbG8")]),
    );
    assert!(check.problems.is_empty(), "{:?}", check.problems);
}

#[test]
fn content_encoding_base64_refuses_other_text_naming_the_rule() {
    let p = check_parameters(
        &file_bundle(),
        "install",
        &given(&[("cert", "not base64!"), ("key", "s3cr3t-not-b64!")]),
    )
    .problems;
    assert_eq!(
        p,
        [
            "parameter `cert`: `not base64!` is not valid base64 (rule `contentEncoding` of definition `file`)",
            "parameter `key`: the value is not valid base64 (rule `contentEncoding` of definition `secret-file`)",
        ]
    );
}

#[test]
fn content_encoding_base64_is_checked_once_even_where_the_draft_checks_it() {
    let bundle: Bundle = serde_json::from_value(serde_json::json!({
        "parameters": {"cert": {"definition": "file"}},
        "definitions": {"file": {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "string", "contentEncoding": "base64"
        }}
    }))
    .unwrap();
    let p = check_parameters(&bundle, "install", &given(&[("cert", "%%%")])).problems;
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].contains("rule `contentEncoding`"), "{p:?}");
}

#[test]
fn an_encoding_stowage_cannot_decode_is_a_problem() {
    let p = check_parameters(&file_bundle(), "install", &given(&[("odd", "x")])).problems;
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].contains("`quoted-printable`"), "{p:?}");
}

#[test]
fn wiped_values_are_zeroed_strings_keys_and_all() {
    let mut value = crate::validate::Wiped(serde_json::json!({"k": ["a", {"b": "c"}]}));
    crate::validate::wipe_for_test(&mut value);
    assert_eq!(value.0, serde_json::Value::Null);
}
