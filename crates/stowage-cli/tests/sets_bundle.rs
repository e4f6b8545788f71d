//! Credential and parameter sets against a bundle, end to end: missing and unknown
//! entries, typed and validated parameters, and `stowage exec` delivering them.

mod sets_common;

use sets_common::*;

#[test]
fn resolve_against_a_bundle_reports_missing_and_unknown_entries_together() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let bundle = h.join("bundle.json");
    std::fs::write(
        &bundle,
        r#"{"schemaVersion": "v1.0.0", "name": "hello", "version": "0.1.0",
            "invocationImages": [{"imageType": "docker", "image": "hello:0.1.0"}],
            "credentials": {
              "hostkey": {"env": "HOST_KEY", "required": true},
              "kubeconfig": {"path": "/root/.kube/config", "required": true, "applyTo": ["install"]}
            }}"#,
    )
    .unwrap();
    let file = h.join("creds.yaml");
    std::fs::write(
        &file,
        "name: prod\ncredentials:\n\
         - {name: hostkey, source: {value: k3y}}\n\
         - {name: extra, source: {env: STOWAGE_SETS_TEST_UNSET}}\n",
    )
    .unwrap();
    assert!(
        run(h, &["credentials", "apply", file.to_str().unwrap()])
            .status
            .success()
    );
    let b = bundle.to_str().unwrap();

    let install = run(
        h,
        &[
            "credentials",
            "resolve",
            "prod",
            "--bundle",
            b,
            "--action",
            "install",
        ],
    );
    assert_eq!(install.status.code(), Some(7), "{}", stderr(&install));
    let err = stderr(&install);
    assert!(
        err.contains("credential `kubeconfig` is required by bundle `hello` for `install`"),
        "{err}"
    );
    assert!(
        err.contains(
            "credential `extra` of credential set `prod` is not a credential of bundle `hello`"
        ),
        "{err}"
    );
    // The unknown entry is not resolved (its variable is unset, and no failure says so).
    assert!(!err.contains("STOWAGE_SETS_TEST_UNSET"), "{err}");
    assert!(!stdout(&install).contains("k3y") && !err.contains("k3y"));

    // For uninstall only `extra` is wrong (kubeconfig is for install only).
    let uninstall = run(
        h,
        &[
            "credentials",
            "resolve",
            "prod",
            "--bundle",
            b,
            "--action",
            "uninstall",
        ],
    );
    assert_eq!(uninstall.status.code(), Some(7));
    assert_eq!(
        stderr(&uninstall).lines().count(),
        1,
        "{}",
        stderr(&uninstall)
    );
    let usage = run(h, &["credentials", "resolve", "prod", "--bundle", b]);
    assert_eq!(usage.status.code(), Some(2), "--bundle needs --action");
}

#[test]
fn parameters_against_a_bundle_are_typed_validated_and_defaulted() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let bundle = h.join("bundle.json");
    std::fs::write(
        &bundle,
        r#"{"schemaVersion": "v1.0.0", "name": "hello", "version": "0.1.0",
            "parameters": {
              "port": {"definition": "port", "destination": {"env": "PORT"}},
              "replicas": {"definition": "replicas", "destination": {"env": "REPLICAS"}},
              "password": {"definition": "password", "destination": {"path": "/cnab/app/pw"}, "required": true}
            },
            "definitions": {
              "port": {"type": "integer", "minimum": 10, "default": 8080},
              "replicas": {"type": "integer", "minimum": 1, "maximum": 5},
              "password": {"type": "string", "minLength": 12, "writeOnly": true}
            }}"#,
    )
    .unwrap();
    let file = h.join("params.yaml");
    std::fs::write(
        &file,
        "name: prod\nparameters:\n\
         - {name: replicas, source: {value: 9}}\n\
         - {name: password, source: {value: hunter2}}\n",
    )
    .unwrap();
    assert!(
        run(h, &["parameters", "apply", file.to_str().unwrap()])
            .status
            .success()
    );
    let b = bundle.to_str().unwrap();

    let out = run(
        h,
        &[
            "parameters",
            "resolve",
            "prod",
            "--bundle",
            b,
            "--action",
            "install",
        ],
    );
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("parameter `replicas`: 9 is greater than the maximum of 5 (rule `maximum`"),
        "{err}"
    );
    assert!(
        err.contains("parameter `password`: the value breaks rule `minLength`"),
        "{err}"
    );
    assert!(!err.contains("hunter2") && !stdout(&out).contains("hunter2"));
    assert!(
        stdout(&out).contains("port      bundle default  default   8080"),
        "{}",
        stdout(&out)
    );

    // Fixed values pass; the default shows in JSON.
    std::fs::write(
        &file,
        "name: prod\nparameters:\n\
         - {name: replicas, source: {value: 3}}\n\
         - {name: password, source: {value: correct-horse-battery}}\n",
    )
    .unwrap();
    assert!(
        run(h, &["parameters", "apply", file.to_str().unwrap()])
            .status
            .success()
    );
    let ok = run(
        h,
        &[
            "parameters",
            "resolve",
            "prod",
            "--bundle",
            b,
            "--action",
            "install",
            "--output",
            "json",
        ],
    );
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert_eq!(json(&ok)["defaults"], serde_json::json!({"port": 8080}));
}

#[test]
fn exec_delivers_values_as_the_bundle_says_and_cleans_up() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let bundle = h.join("bundle.json");
    std::fs::write(
        &bundle,
        r#"{"schemaVersion": "v1.0.0", "name": "hello", "version": "0.1.0",
            "credentials": {"kubeconfig": {"path": "/root/.kube/config", "env": "KUBE"}},
            "parameters": {
              "port": {"definition": "port", "destination": {"env": "PORT"}},
              "password": {"definition": "pw", "destination": {"path": "/cnab/app/pw"}}
            },
            "definitions": {"port": {"type": "integer", "default": 8080},
                            "pw": {"type": "string", "writeOnly": true}}}"#,
    )
    .unwrap();
    let creds = h.join("creds.yaml");
    std::fs::write(
        &creds,
        "name: c\ncredentials:\n- {name: kubeconfig, source: {value: kube-bytes}}\n",
    )
    .unwrap();
    let params = h.join("params.yaml");
    std::fs::write(
        &params,
        "name: p\nparameters:\n- {name: password, source: {command: printf s3cr3t}}\n",
    )
    .unwrap();
    assert!(
        run(h, &["credentials", "apply", creds.to_str().unwrap()])
            .status
            .success()
    );
    assert!(
        run(h, &["parameters", "apply", params.to_str().unwrap()])
            .status
            .success()
    );
    let digest = h.join("digest");
    let script = format!(
        "{{ echo \"KUBE=$KUBE PORT=$PORT\"; cat \"$STOWAGE_FILES_DIR/root/.kube/config\"; echo; \
         cat \"$STOWAGE_FILES_DIR/cnab/app/pw\"; echo; stat -c %a \"$STOWAGE_FILES_DIR\" \"$STOWAGE_FILES_DIR/cnab/app/pw\"; \
         echo \"$STOWAGE_FILES_DIR\"; }} > {}; exit 3",
        digest.display()
    );
    let b = bundle.to_str().unwrap();
    let out = run(
        h,
        &[
            "exec", "--bundle", b, "--action", "install", "-c", "c", "-p", "p", "--", "sh", "-c",
            &script,
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(3),
        "the command's exit code: {}",
        stderr(&out)
    );
    let seen = std::fs::read_to_string(&digest).unwrap();
    let lines: Vec<&str> = seen.lines().collect();
    assert_eq!(
        lines[..6],
        [
            "KUBE=kube-bytes PORT=8080",
            "kube-bytes",
            "s3cr3t",
            "700",
            "600",
            lines[5]
        ]
    );
    assert!(
        !Path::new(lines[5]).exists(),
        "the private directory is removed"
    );

    // Without a bundle: variables named after the entries.
    let plain = run(
        h,
        &[
            "exec",
            "-c",
            "c",
            "--",
            "sh",
            "-c",
            "test \"$KUBECONFIG\" = kube-bytes",
        ],
    );
    assert!(plain.status.success(), "{}", stderr(&plain));
    // Or as an env map says.
    let map = h.join("env-map.yaml");
    std::fs::write(&map, "kubeconfig: MY_KUBE\n").unwrap();
    let map = map.to_str().unwrap();
    let check = "test \"$MY_KUBE\" = kube-bytes";
    let mapped = run(
        h,
        &["exec", "-c", "c", "--env-map", map, "--", "sh", "-c", check],
    );
    assert!(mapped.status.success(), "{}", stderr(&mapped));

    // Anything unresolved: nothing runs.
    std::fs::write(
        &params,
        "name: p\nparameters:\n- {name: password, source: {env: STOWAGE_SETS_TEST_UNSET}}\n",
    )
    .unwrap();
    assert!(
        run(h, &["parameters", "apply", params.to_str().unwrap()])
            .status
            .success()
    );
    let marker = h.join("ran");
    let touch = format!("touch {}", marker.display());
    let refused = run(
        h,
        &[
            "exec", "--bundle", b, "--action", "install", "-c", "c", "-p", "p", "--", "sh", "-c",
            &touch,
        ],
    );
    assert_ne!(refused.status.code(), Some(0));
    assert!(
        stderr(&refused).contains("parameter `password` (env STOWAGE_SETS_TEST_UNSET)"),
        "{}",
        stderr(&refused)
    );
    assert!(stderr(&refused).contains("nothing was run"));
    assert!(!marker.exists());
}
