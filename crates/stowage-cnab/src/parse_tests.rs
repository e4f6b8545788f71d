//! One test per rule of the set file format.

use crate::{Format, SetKind, Source, parse};

fn yaml_creds(text: &str) -> Result<crate::ValueSet, String> {
    parse(text, Format::Yaml, SetKind::Credentials).map_err(|e| e.to_string())
}

const GOOD_YAML: &str = "\
schemaType: CredentialSet
schemaVersion: 1.0.1
name: prod
namespace: team-a
labels:
  env: prod
credentials:
  - name: kubeconfig
    source:
      path: /home/me/.kube/config
  - name: db-password
    source:
      secret: vault:db/password
  - name: token
    source:
      env: GITHUB_TOKEN
  - name: region
    source:
      value: eu-west-1
  - name: sig
    source:
      command: gpg --decrypt key.gpg
";

#[test]
fn reads_every_source_kind_from_yaml() {
    let set = yaml_creds(GOOD_YAML).unwrap();
    assert_eq!(set.name, "prod");
    assert_eq!(set.namespace, "team-a");
    assert_eq!(set.labels["env"], "prod");
    let kinds: Vec<&str> = set.entries.iter().map(|e| e.source.kind()).collect();
    assert_eq!(kinds, ["path", "secret", "env", "value", "command"]);
    assert_eq!(
        set.entries[1].source,
        Source::Secret("vault:db/password".into())
    );
}

#[test]
fn reads_the_cnab_spec_json_example() {
    let text = r#"{
      "schemaVersion": "1.0.0-DRAFT+b6c701f",
      "name": "mycreds",
      "created": "2019-04-30T15:00:00Z",
      "modified": "2019-04-30T15:00:00Z",
      "credentials": [
        {"name": "kubeconfig", "source": {"path": "$HOME/.kube/config"}},
        {"name": "image_token", "source": {"value": "1234aaaaaaaaa"}},
        {"name": "hostkey", "source": {"env": "HOSTKEY"}}
      ]
    }"#;
    let set = parse(text, Format::Json, SetKind::Credentials).unwrap();
    assert_eq!(set.schema_version, "1.0.0-DRAFT+b6c701f");
    assert_eq!(set.namespace, "");
    assert_eq!(set.entries.len(), 3);
    // The JSON form round-trips.
    let again = parse(
        &set.to_json().to_string(),
        Format::Json,
        SetKind::Credentials,
    )
    .unwrap();
    assert_eq!(again, set);
}

#[test]
fn two_source_kinds_name_the_file_line_and_entry() {
    let text = "name: prod\ncredentials:\n  - name: ok\n    source:\n      env: A\n  - name: db-password\n    source:\n      env: DB\n      value: hunter2\n";
    let err = parse(text, Format::Yaml, SetKind::Credentials).unwrap_err();
    let mut err = err;
    err.path = Some("creds.yaml".into());
    assert_eq!(
        err.to_string(),
        "creds.yaml:7: credential `db-password`: a source needs exactly one of secret, env, value, path, command (found env and value)"
    );
    assert!(!err.to_string().contains("hunter2"));
}

#[test]
fn a_source_with_no_kind_is_refused() {
    let err = yaml_creds("name: p\ncredentials:\n  - name: a\n    source: {}\n").unwrap_err();
    assert!(
        err.contains("line 4: credential `a`: a source needs exactly one of"),
        "{err}"
    );
    assert!(err.contains("(found none)"), "{err}");
}

#[test]
fn an_unknown_source_kind_is_named() {
    let err = yaml_creds("name: p\ncredentials:\n  - name: a\n    source:\n      vault: x\n")
        .unwrap_err();
    assert_eq!(
        err,
        "line 5: credential `a`: unknown source kind `vault` (a source is one of secret, env, value, path, command)"
    );
}

#[test]
fn a_missing_source_is_refused() {
    let err = yaml_creds("name: p\ncredentials:\n  - name: a\n").unwrap_err();
    assert_eq!(
        err,
        "line 3: credential `a`: needs a `source` with one of secret, env, value, path, command"
    );
}

#[test]
fn a_missing_entry_name_is_refused_by_position() {
    let err = yaml_creds("name: p\ncredentials:\n  - source:\n      env: A\n").unwrap_err();
    assert_eq!(err, "line 3: credential #1: needs a non-empty `name`");
}

#[test]
fn duplicate_entry_names_are_refused() {
    let err = yaml_creds("name: p\ncredentials:\n  - name: a\n    source: {env: A}\n  - name: a\n    source: {env: B}\n").unwrap_err();
    assert!(err.contains("credential `a`: appears twice"), "{err}");
}

#[test]
fn a_missing_set_name_is_refused() {
    let err = yaml_creds("credentials: []\n").unwrap_err();
    assert_eq!(err, "a credential set needs a `name`");
}

#[test]
fn a_missing_list_hints_at_the_other_kind() {
    let err = yaml_creds("name: p\nparameters: []\n").unwrap_err();
    assert!(
        err.contains("this is a parameter set; use `stowage parameters apply`"),
        "{err}"
    );
}

#[test]
fn a_wrong_schema_type_is_refused() {
    let err = yaml_creds("schemaType: ParameterSet\nname: p\ncredentials: []\n").unwrap_err();
    assert!(
        err.starts_with("line 1: `schemaType` is `ParameterSet`, expected `CredentialSet`"),
        "{err}"
    );
}

#[test]
fn literal_values_may_be_numbers_but_references_must_be_text() {
    let set = parse(
        "name: p\nparameters:\n  - name: port\n    source:\n      value: 8080\n",
        Format::Yaml,
        SetKind::Parameters,
    )
    .unwrap();
    assert_eq!(set.entries[0].source, Source::Value("8080".into()));
    let err = parse(
        "name: p\nparameters:\n  - name: port\n    source:\n      env: 8080\n",
        Format::Yaml,
        SetKind::Parameters,
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        err,
        "line 5: parameter `port`: `env` must be a string, not a number"
    );
}

#[test]
fn a_non_text_value_is_described_never_quoted() {
    let err =
        yaml_creds("name: p\ncredentials:\n  - name: a\n    source:\n      value: [s3cr3t]\n")
            .unwrap_err();
    assert!(
        err.contains("`value` must be a string, number or boolean, not a list"),
        "{err}"
    );
    assert!(!err.contains("s3cr3t"));
}

#[test]
fn labels_must_be_a_mapping_of_strings() {
    let err = yaml_creds("name: p\nlabels: [a]\ncredentials: []\n").unwrap_err();
    assert_eq!(
        err,
        "line 2: `labels` must be a mapping of names to strings, not a list"
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let err = yaml_creds("name: p\ncredentials:\n  - name: a\n    source: {}\n  - name: b\n")
        .unwrap_err();
    assert_eq!(err.lines().count(), 2, "{err}");
}

#[test]
fn syntax_errors_carry_the_parsers_line() {
    let err = yaml_creds("name: p\ncredentials:\n  - name: [\n").unwrap_err();
    assert!(
        err.starts_with("line ") && err.contains("not valid YAML"),
        "{err}"
    );
    let err = parse(
        "{\n \"name\": \"p\",\n}",
        Format::Json,
        SetKind::Credentials,
    )
    .unwrap_err()
    .to_string();
    assert!(err.starts_with("line 3: not valid JSON"), "{err}");
}

#[test]
fn names_follow_the_storage_rules() {
    let err = yaml_creds("name: \"a\\tb\"\ncredentials: []\n").unwrap_err();
    assert_eq!(err, "line 1: `name` must not contain control characters");
}

#[test]
fn debug_output_never_shows_a_literal_value() {
    assert_eq!(
        format!("{:?}", Source::Value("hunter2".into())),
        "Value(<redacted>)"
    );
    assert_eq!(format!("{:?}", Source::Env("HOME".into())), "Env(\"HOME\")");
}

#[test]
fn format_is_guessed_from_extension_then_content() {
    use std::path::Path;
    assert_eq!(Format::guess(Some(Path::new("a.JSON")), ""), Format::Json);
    assert_eq!(Format::guess(Some(Path::new("a.yml")), "{"), Format::Yaml);
    assert_eq!(Format::guess(None, "  {\"a\":1}"), Format::Json);
    assert_eq!(Format::guess(None, "a: 1"), Format::Yaml);
}

#[test]
fn flow_style_entries_are_located() {
    let err = yaml_creds("name: p\ncredentials:\n  - {name: a, source: {env: A}}\n  - {name: b, source: {env: true}}\n").unwrap_err();
    assert_eq!(
        err,
        "line 4: credential `b`: `env` must be a string, not a boolean"
    );
}

#[test]
fn the_yaml_form_round_trips_in_file_order() {
    let set = yaml_creds(GOOD_YAML).unwrap();
    let yaml = set.to_yaml();
    assert!(
        yaml.starts_with("schemaType: CredentialSet\nschemaVersion: 1.0.1\nname: prod\n"),
        "{yaml}"
    );
    assert_eq!(yaml_creds(&yaml).unwrap(), set);
}
