//! `stowage exec` end to end: the walkthrough's bundle (examples/cnab/bundle.json, in the
//! shape of the CNAB spec's example) with credential and parameter sets mixing env, value,
//! path, command and secret sources, the secrets on the built-in `filesystem` backend, the
//! testkit plugin, AWS Secrets Manager on moto and Azure Key Vault on its stand-in. The
//! command is a shell script writing a digest of what it was given; the test computes the
//! digest it should be. Also: one batch call per backend per exec, backends at the same
//! time, and no value in any message at `-vv`.

mod cnab_common;

use base64::Engine as _;
use cnab_common::*;
use stowage_tests::keyvault_standin::StandIn;
use stowage_tests::processes::{aws_secretsmanager_plugin_bin, azure_keyvault_plugin_bin};

const VARS: [&str; 9] = [
    "HOST_KEY",
    "AZ_IMAGE_TOKEN",
    "REGISTRY_PASSWORD",
    "BACKEND_PORT",
    "GREETING",
    "TIER",
    "DEBUG",
    "DB_PASSWORD",
    "PURGE_DATA",
];

/// Runs `stowage exec` for `action` with the digest script and returns (digest, the
/// private directory's path).
fn exec_digest(home: &Home, action: &str, env: &[(&str, &str)]) -> (String, String) {
    let script = home.file("digest.sh", DIGEST_SH);
    let out = home.path().join(format!("digest-{action}"));
    let bundle = examples().join("bundle.json");
    let mut args = vec![
        "exec",
        "--bundle",
        bundle.to_str().unwrap(),
        "--action",
        action,
        "-c",
        "prod",
        "-p",
        "app",
        "-p",
        "secrets",
        "--",
        "sh",
        script.to_str().unwrap(),
        out.to_str().unwrap(),
    ];
    args.extend(VARS);
    home.ok(&args, b"", env);
    let dir = std::fs::read_to_string(format!("{}.dir", out.display())).unwrap();
    (std::fs::read_to_string(&out).unwrap(), dir)
}

#[test]
fn exec_delivers_values_from_every_kind_of_backend_where_the_bundle_says() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let kv = rt.block_on(StandIn::start());
    let moto = stowage_tests::emulators::moto();
    let scratch = tempfile::tempdir().unwrap();
    let ca = scratch.path().join("ca.pem");
    std::fs::write(&ca, &kv.ca_pem).unwrap();
    let prefix = stowage_tests::emulators::fresh_name("exec") + "/";
    let home = Home::new("");
    let h = home.path();
    std::fs::write(
        h.join("config.toml"),
        format!(
            "{kit}\
             [secrets.aws]\npath = \"{aws}\"\ntimeout = \"60s\"\n\
             env = {{ AWS_ACCESS_KEY_ID = \"testing\", AWS_SECRET_ACCESS_KEY = \"testing\", \
             AWS_EC2_METADATA_DISABLED = \"true\", AWS_CONFIG_FILE = \"/nonexistent/c\", \
             AWS_SHARED_CREDENTIALS_FILE = \"/nonexistent/c\" }}\n\
             [secrets.aws.config]\nendpoint-url = \"{moto}\"\nregion = \"us-east-1\"\nprefix = \"{prefix}\"\n\
             [secrets.kv]\npath = \"{kvbin}\"\ntimeout = \"60s\"\nenv = {{ KV_TOKEN = \"{token}\" }}\n\
             [secrets.kv.config]\nvault-url = \"{url}\"\nca-file = \"{ca}\"\ncredential = \"access-token\"\n\
             access-token-env = \"KV_TOKEN\"\nverify-challenge-resource = false\n",
            kit = testkit_backend(h, "kit", ""),
            aws = aws_secretsmanager_plugin_bin().display(),
            moto = moto.endpoint,
            kvbin = azure_keyvault_plugin_bin().display(),
            token = kv.token,
            url = kv.url,
            ca = ca.display(),
        ),
    )
    .unwrap();

    // The values, each on its backend.
    let db_password = "correct horse battery staple";
    let host_key = "ssh-ed25519 AAAAC3Nza kit@example";
    let image_token = "aws-token-Ω-ünïcode";
    let cert: Vec<u8> = (0..=255u8).rev().chain(*b"-----END-----\n").collect();
    let kubeconfig = "apiVersion: v1\nkind: Config\n";
    let app_config = r#"{"region": "eu-west-1", "replicas": 3}"#;
    home.secret(None, "db/password", db_password.as_bytes());
    home.secret(Some("kit"), "hostkey", host_key.as_bytes());
    home.secret(Some("kit"), "port", b"8080");
    home.secret(Some("aws"), "image-token", image_token.as_bytes());
    home.secret(
        Some("kv"),
        "tls-cert",
        base64::engine::general_purpose::STANDARD
            .encode(&cert)
            .as_bytes(),
    );
    let kubeconfig_file = home.file("kubeconfig", kubeconfig);

    home.apply(
        "credentials",
        &format!(
            "name: prod\ncredentials:\n\
             - {{name: hostkey, source: {{secret: 'kit:hostkey'}}}}\n\
             - {{name: image_token, source: {{secret: 'aws:image-token'}}}}\n\
             - {{name: kubeconfig, source: {{path: '{}'}}}}\n\
             - {{name: registry_password, source: {{secret: 'kv:not-there'}}}}\n",
            kubeconfig_file.display()
        ),
    );
    home.apply(
        "parameters",
        &format!(
            "name: app\nparameters:\n\
             - {{name: backend_port, source: {{secret: 'kit:port'}}}}\n\
             - {{name: greeting, source: {{command: \"printf '%s' 'Hello, world'\"}}}}\n\
             - {{name: tier, source: {{env: STOWAGE_TEST_TIER}}}}\n\
             - {{name: app_config, source: {{value: '{app_config}'}}}}\n\
             - {{name: purge_data, source: {{value: 'true'}}}}\n"
        ),
    );
    home.apply(
        "parameters",
        "name: secrets\nparameters:\n\
         - {name: db_password, source: {secret: db/password}}\n\
         - {name: tls_cert, source: {secret: 'kv:tls-cert'}}\n",
    );
    reset_counts(h, &["kit"]);
    kv.clear_log();

    let env = [("STOWAGE_TEST_TIER", "premium")];
    let (digest, dir) = exec_digest(&home, "install", &env);
    let expected = expected_digest(
        &[
            ("HOST_KEY", Some(host_key.as_bytes())),
            ("AZ_IMAGE_TOKEN", Some(image_token.as_bytes())),
            ("REGISTRY_PASSWORD", None), // applyTo upgrade: not even resolved
            ("BACKEND_PORT", Some(b"8080")),
            ("GREETING", Some(b"Hello, world")),
            ("TIER", Some(b"premium")),
            ("DEBUG", Some(b"false")), // the definition's default
            ("DB_PASSWORD", Some(db_password.as_bytes())),
            ("PURGE_DATA", None), // applyTo uninstall
        ],
        &[
            ("etc/hostkey.txt", host_key.as_bytes()),
            ("home/.kube/config", kubeconfig.as_bytes()),
            ("cnab/app/config.json", app_config.as_bytes()),
            ("cnab/app/secrets/db-password", db_password.as_bytes()),
            ("cnab/app/tls/cert.pem", &cert), // decoded from base64
        ],
    );
    assert_eq!(digest, expected);
    assert!(!std::path::Path::new(&dir).exists(), "{dir} is left");
    // The testkit backend: one process, one call for its two entries of two sets.
    assert_eq!(lines(&h.join("kit.pids")).len(), 1);
    assert_eq!(lines(&h.join("kit.calls")), ["resolve 2"]);
    let kv_gets: Vec<String> = kv
        .requests()
        .into_iter()
        .map(|(m, p)| format!("{m} {p}"))
        .collect();
    // One read (Key Vault has no batch read), of `tls-cert` in the plugin's name encoding.
    assert_eq!(kv_gets, ["GET /secrets/tls-2dcert/"]);

    // Uninstall: the install/upgrade entries are neither resolved nor delivered.
    reset_counts(h, &["kit"]);
    kv.clear_log();
    let (digest, dir) = exec_digest(&home, "uninstall", &env);
    let expected = expected_digest(
        &[
            ("HOST_KEY", Some(host_key.as_bytes())),
            ("AZ_IMAGE_TOKEN", Some(image_token.as_bytes())),
            ("REGISTRY_PASSWORD", None),
            ("BACKEND_PORT", Some(b"8080")),
            ("GREETING", Some(b"Hello, world")),
            ("TIER", Some(b"premium")),
            ("DEBUG", Some(b"false")),
            ("DB_PASSWORD", None),
            ("PURGE_DATA", Some(b"true")),
        ],
        &[
            ("etc/hostkey.txt", host_key.as_bytes()),
            ("home/.kube/config", kubeconfig.as_bytes()),
        ],
    );
    assert_eq!(digest, expected);
    assert!(!std::path::Path::new(&dir).exists(), "{dir} is left");
    assert!(kv.requests().is_empty(), "{:?}", kv.requests());
    drop(rt);
}

/// Two testkit backends, each of which answers only once it has seen the other one
/// called (a barrier on files; a backend called alone fails after 20 s): the exec and the
/// resolve succeed only if the backends are called at the same time. And each is called
/// once, from one process, whatever the number of its entries and sets.
#[test]
fn one_call_per_backend_per_command_and_backends_at_the_same_time() {
    let home = Home::new("");
    let h = home.path();
    let barrier = |me: &str, other: &str| {
        format!(
            "barrier-mark = \"{}\"\nbarrier-wait = \"{}\"",
            h.join(format!("{me}.started")).display(),
            h.join(format!("{other}.started")).display()
        )
    };
    let config = testkit_backend(h, "alpha", "") + &testkit_backend(h, "beta", "");
    std::fs::write(h.join("config.toml"), &config).unwrap();
    for (b, key) in [
        ("alpha", "a1"),
        ("alpha", "a2"),
        ("alpha", "a3"),
        ("beta", "b1"),
        ("beta", "b2"),
    ] {
        home.secret(Some(b), key, format!("v-{key}").as_bytes());
    }
    std::fs::write(
        h.join("config.toml"),
        testkit_backend(h, "alpha", &barrier("alpha", "beta"))
            + &testkit_backend(h, "beta", &barrier("beta", "alpha")),
    )
    .unwrap();
    home.apply(
        "credentials",
        "name: creds\ncredentials:\n\
         - {name: a1, source: {secret: 'alpha:a1'}}\n\
         - {name: b1, source: {secret: 'beta:b1'}}\n\
         - {name: a2, source: {secret: 'alpha:a2'}}\n\
         - {name: local, source: {value: plain}}\n",
    );
    home.apply(
        "parameters",
        "name: params\nparameters:\n\
         - {name: a3, source: {secret: 'alpha:a3'}}\n\
         - {name: b2, source: {secret: 'beta:b2'}}\n\
         - {name: again, source: {secret: 'alpha:a1'}}\n",
    );
    let fresh = || {
        reset_counts(h, &["alpha", "beta"]);
        for b in ["alpha", "beta"] {
            let _ = std::fs::remove_file(h.join(format!("{b}.started")));
        }
    };

    fresh();
    let out = home.ok(
        &[
            "exec",
            "-c",
            "creds",
            "-p",
            "params",
            "--",
            "sh",
            "-c",
            "printf '%s' \"$A1 $B2 $AGAIN\"",
        ],
        b"",
        &[],
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "v-a1 v-b2 v-a1");
    assert_eq!(lines(&h.join("alpha.calls")), ["resolve 4"]);
    assert_eq!(lines(&h.join("beta.calls")), ["resolve 2"]);
    assert_eq!(lines(&h.join("alpha.pids")).len(), 1);
    assert_eq!(lines(&h.join("beta.pids")).len(), 1);

    fresh();
    home.ok(&["credentials", "resolve", "creds"], b"", &[]);
    assert_eq!(lines(&h.join("alpha.calls")), ["resolve 2"]);
    assert_eq!(lines(&h.join("beta.calls")), ["resolve 1"]);
    assert_eq!(lines(&h.join("alpha.pids")).len(), 1);
    assert_eq!(lines(&h.join("beta.pids")).len(), 1);
}

/// At `-vv` (debug logs, plugins' stderr included), a sensitive parameter that breaks a
/// rule and a set that fails to resolve are reported by name and rule, never by value.
#[test]
fn no_value_in_any_message_at_debug_level() {
    let home = Home::new("");
    let h = home.path();
    std::fs::write(h.join("config.toml"), testkit_backend(h, "kit", "")).unwrap();
    let short = "Sup3rS3cret"; // 11 characters, minLength is 12
    let not_b64 = "Xyzzy-Secret-Cert!";
    let sibling = "Resolved-But-Secret-77";
    let stdout_only = "LEAKY-STDOUT-SECRET"; // what the failing command prints
    home.secret(Some("kit"), "short", short.as_bytes());
    home.secret(Some("kit"), "cert", not_b64.as_bytes());
    home.secret(Some("kit"), "greeting", sibling.as_bytes());
    let kubeconfig = home.file("kubeconfig", "kind: Config\n");
    home.apply(
        "credentials",
        &format!(
            "name: prod\ncredentials:\n\
             - {{name: image_token, source: {{value: tok}}}}\n\
             - {{name: kubeconfig, source: {{path: '{}'}}}}\n",
            kubeconfig.display()
        ),
    );
    home.apply(
        "parameters",
        "name: bad\nparameters:\n\
         - {name: greeting, source: {value: hi}}\n\
         - {name: db_password, source: {secret: 'kit:short'}}\n\
         - {name: tls_cert, source: {secret: 'kit:cert'}}\n",
    );
    home.apply(
        "parameters",
        "name: failing\nparameters:\n\
         - {name: greeting, source: {secret: 'kit:greeting'}}\n\
         - {name: db_password, source: {command: \"sh -c 'echo leaky-stdout-secret | tr a-z A-Z; exit 3'\"}}\n\
         - {name: tls_cert, source: {secret: 'kit:missing'}}\n",
    );
    let bundle = examples().join("bundle.json");
    let bundle = bundle.to_str().unwrap();
    let secrets = [short, not_b64, sibling, stdout_only];
    let check = |args: &[&str], code: i32, wanted: &[&str]| {
        let out = home.run(args, b"", &[]);
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
        assert!(stderr.contains("DEBUG"), "not at debug level: {stderr}");
        for w in wanted {
            assert!(stderr.contains(w), "{args:?}: no {w:?} in {stderr}");
        }
        for s in secrets {
            assert!(
                !stdout.contains(s) && !stderr.contains(s),
                "{args:?} shows {s:?}:\n{stdout}\n{stderr}"
            );
        }
    };
    let rules = [
        "parameter `db_password`: the value breaks rule `minLength` of definition `password`",
        "parameter `tls_cert`: the value is not valid base64 (rule `contentEncoding` of definition `x509Certificate`)",
    ];
    let exec = |set| {
        [
            "-vv", "exec", "--bundle", bundle, "--action", "install", "-c", "prod", "-p", set,
            "--", "true",
        ]
    };
    let resolve = |set| {
        [
            "-vv",
            "parameters",
            "resolve",
            set,
            "--bundle",
            bundle,
            "--action",
            "install",
        ]
    };
    check(&exec("bad"), 7, &rules);
    check(&resolve("bad"), 7, &rules);
    let failed = [
        "parameter `db_password` (command sh -c",
        "exit",
        "parameter `tls_cert` (secret kit:missing)",
    ];
    check(&exec("failing"), 1, &failed);
    check(&resolve("failing"), 1, &failed);
}
