//! Reading bundle.json and checking sets against it.

use crate::{Bundle, Format, SetKind, parse};

/// The shape of the cnab-spec example, with what real tools add (Porter's `custom`,
/// `images`, `invocationImages`, `requiredExtensions`), which is ignored.
const BUNDLE: &str = r#"{
  "schemaVersion": "v1.0.0",
  "name": "helloworld",
  "version": "0.1.2",
  "description": "An example 'thin' helloworld Cloud-Native Application Bundle",
  "invocationImages": [{"imageType": "docker", "image": "cnab/helloworld:0.1.2"}],
  "images": {},
  "requiredExtensions": ["io.cnab.dependencies"],
  "credentials": {
    "hostkey": {"env": "HOST_KEY", "path": "/etc/hostkey.txt", "required": true},
    "kubeconfig": {"path": "/root/.kube/config", "required": true, "applyTo": ["install", "upgrade"]},
    "image_token": {"env": "AZ_IMAGE_TOKEN"}
  },
  "parameters": {
    "port": {"definition": "http_port", "destination": {"env": "PORT"}, "required": true},
    "password": {"definition": "password", "destination": {"path": "/cnab/app/password"}, "required": true, "applyTo": ["install"]},
    "replicas": {"definition": "replicas", "destination": {"env": "REPLICAS"}}
  },
  "definitions": {
    "http_port": {"type": "integer", "default": 80, "minimum": 10, "maximum": 10240},
    "password": {"type": "string", "writeOnly": true, "minLength": 8},
    "replicas": {"type": "integer", "minimum": 1}
  },
  "outputs": {"clientCert": {"definition": "password", "path": "/cnab/app/outputs/clientCert"}},
  "custom": {"sh.porter": {"manifestDigest": "abc"}}
}"#;

fn bundle() -> Bundle {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bundle.json");
    std::fs::write(&path, BUNDLE).unwrap();
    Bundle::read(&path).unwrap()
}

#[test]
fn reads_a_real_bundle_and_ignores_what_it_does_not_use() {
    let b = bundle();
    assert_eq!(b.name, "helloworld");
    assert!(b.credentials["hostkey"].required);
    assert_eq!(b.credentials["kubeconfig"].apply_to, ["install", "upgrade"]);
    assert_eq!(
        b.parameters["port"]
            .destination
            .as_ref()
            .unwrap()
            .env
            .as_deref(),
        Some("PORT")
    );
    assert_eq!(b.default_of("port"), Some(&serde_json::json!(80)));
    assert!(b.is_sensitive("password"));
    assert!(!b.is_sensitive("port"));
    assert!(b.custom.contains_key("sh.porter"));
}

#[test]
fn a_missing_definition_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bundle.json");
    std::fs::write(
        &path,
        r#"{"name": "b", "parameters": {"p": {"definition": "nope"}}}"#,
    )
    .unwrap();
    let err = Bundle::read(&path).unwrap_err().to_string();
    assert!(
        err.ends_with("bundle.json: parameter `p`: its definition `nope` is not in `definitions`"),
        "{err}"
    );
}

#[test]
fn text_parses_like_the_file_and_errors_name_no_file() {
    assert_eq!(Bundle::parse(BUNDLE, None).unwrap(), bundle());
    let err = Bundle::parse(
        "{\n \"parameters\": {\"p\": {\"definition\": \"x\"}}}",
        None,
    )
    .unwrap_err();
    assert_eq!(err.path, None);
    assert_eq!(
        err.to_string(),
        "parameter `p`: its definition `x` is not in `definitions`"
    );
    let err = Bundle::parse("{\n \"name\": 1\n}", None).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("line 2: not a valid bundle.json: invalid type: integer `1`"),
        "{err}"
    );
}

#[test]
fn invalid_json_gives_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bundle.json");
    std::fs::write(&path, "{\n \"name\": \"b\",\n \"credentials\": [\n}").unwrap();
    let err = Bundle::read(&path).unwrap_err().to_string();
    assert!(
        err.contains(
            "bundle.json:3: not a valid bundle.json: invalid type: sequence, expected a map"
        ),
        "{err}"
    );
    std::fs::write(&path, "{\n \"name\": \"b\",\n}").unwrap();
    let err = Bundle::read(&path).unwrap_err().to_string();
    assert!(
        err.contains("bundle.json:3: not a valid bundle.json: trailing comma"),
        "{err}"
    );
}

#[test]
fn required_and_apply_to_are_checked_per_action() {
    let b = bundle();
    let creds = parse(
        "name: c\ncredentials:\n  - {name: hostkey, source: {env: K}}\n  - {name: extra, source: {env: X}}\n",
        Format::Yaml,
        SetKind::Credentials,
    )
    .unwrap();
    let install = b.check_set(&creds, "install");
    assert_eq!(install.len(), 2, "{install:?}");
    assert!(
        install[0].starts_with(
            "credential `kubeconfig` is required by bundle `helloworld` for `install`"
        )
    );
    assert!(install[1].starts_with(
        "credential `extra` of credential set `c` is not a credential of bundle `helloworld`"
    ));
    // kubeconfig does not apply to uninstall.
    let uninstall = b.check_set(&creds, "uninstall");
    assert_eq!(uninstall.len(), 1, "{uninstall:?}");
    // Only what the action uses is resolved: not the unknown `extra`.
    let used = b.used_by(&creds, "install");
    assert_eq!(used.entries.len(), 1);
    assert_eq!(used.entries[0].name, "hostkey");
}

#[test]
fn a_required_parameter_with_a_default_is_not_missing() {
    let b = bundle();
    let params = parse(
        "name: p\nparameters: []\n",
        Format::Yaml,
        SetKind::Parameters,
    )
    .unwrap();
    // port has a default; password is required for install only.
    assert_eq!(b.check_set(&params, "install").len(), 1);
    assert!(b.check_set(&params, "upgrade").is_empty());
}

#[test]
fn a_required_entry_may_be_in_any_of_several_sets() {
    let bundle: Bundle = serde_json::from_value(serde_json::json!({
        "name": "b",
        "parameters": {
            "a": {"definition": "s", "required": true},
            "b": {"definition": "s", "required": true},
            "c": {"definition": "s", "required": true}
        },
        "definitions": {"s": {"type": "string"}}
    }))
    .unwrap();
    let set = |name: &str, entries: &[&str]| {
        let yaml = format!(
            "name: {name}\nparameters:\n{}",
            entries
                .iter()
                .map(|e| format!("  - {{name: {e}, source: {{value: x}}}}\n"))
                .collect::<String>()
        );
        parse(&yaml, Format::Yaml, SetKind::Parameters).unwrap()
    };
    let (one, two) = (set("one", &["a", "zz"]), set("two", &["b"]));
    assert_eq!(
        bundle.check_sets(&[&one, &two], "install"),
        [
            "parameter `c` is required by bundle `b` for `install` but is not in any of parameter sets `one`, `two`",
            "parameter `zz` of parameter set `one` is not a parameter of bundle `b` (it has: a, b, c)",
        ]
    );
}
