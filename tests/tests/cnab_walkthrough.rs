//! The README's CNAB walkthrough, run as written: its shell blocks (marked
//! `<!-- walkthrough: … -->`) from the repository's root, on the files in examples/cnab,
//! with `stowage` and the plugins of this build on PATH and a fresh home. First on the
//! built-in backends, then with secrets from AWS Secrets Manager (moto, through
//! `AWS_ENDPOINT_URL_SECRETS_MANAGER` as the README says).

mod cnab_common;

use std::path::Path;
use std::process::{Command, Output};

use cnab_common::stowage_bin;
use stowage_tests::readme::{repository_root as root, walkthrough_block as block};

fn sh(script: &str, home: &Path, env: &[(&str, &str)]) -> Output {
    let bin_dir = stowage_bin().parent().unwrap().to_owned();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap());
    let out = Command::new("sh")
        .args(["-eu", "-c", script])
        .current_dir(root())
        .env("PATH", path)
        .env("HOME", home)
        .env("LC_ALL", "C")
        .env_remove("STOWAGE_HOME")
        .env_remove("STOWAGE_CONFIG")
        .env_remove("IMAGE_TOKEN")
        .env_remove("REGISTRY_PASSWORD")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}\nfailed: {:?}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// What `show.sh` prints for the walkthrough's values.
const SHOWN: &str = "greeting=Hello from Stowage port=8080 tier=premium debug=false
image token: 22 bytes, db password: 28 bytes
registry password: not given
file ./cnab/app/config.json: 23 bytes, mode 600
file ./cnab/app/secrets/db-password: 28 bytes, mode 600
file ./cnab/app/tls/cert.pem: 108 bytes, mode 600
file ./etc/hostkey.txt: 29 bytes, mode 600
file ./home/.kube/config: 89 bytes, mode 600
-----BEGIN CERTIFICATE-----
";

#[test]
fn the_readme_walkthrough_works_as_written() {
    let home = tempfile::tempdir().unwrap();
    let out = sh(&block("built-ins"), home.path(), &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.ends_with(SHOWN), "{stdout}");
    // The resolve tables: values hidden, the default shown, upgrade-only left out.
    assert!(stdout.contains("<hidden, 28 bytes>"), "{stdout}");
    assert!(stdout.contains("bundle default"), "{stdout}");
    assert!(!stdout.contains("registry_password"), "{stdout}");
    assert!(!stdout.contains("correct horse"), "{stdout}");

    // The README's bad value: refused before anything runs, by name and rule only.
    let bad = "cd examples/cnab\nprintf short | stowage secrets set helloworld/db-password\n\
         IMAGE_TOKEN=t stowage exec --bundle bundle.json --action install -c helloworld -p helloworld -- ./show.sh \
         2>&1 && exit 1 || test $? -eq 7";
    let out = sh(bad, home.path(), &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(
            "parameter `db_password`: the value breaks rule `minLength` of definition `password`"
        ),
        "{text}"
    );
    assert!(
        !text.contains("short\n") && !text.contains("greeting="),
        "{text}"
    );

    // Then from AWS Secrets Manager: the same stored sets, another default backend.
    let moto = stowage_tests::emulators::moto();
    let out = sh(
        &block("aws"),
        home.path(),
        &[
            ("AWS_ENDPOINT_URL_SECRETS_MANAGER", moto.endpoint.as_str()),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
            ("AWS_CONFIG_FILE", "/nonexistent/stowage-test/config"),
            (
                "AWS_SHARED_CREDENTIALS_FILE",
                "/nonexistent/stowage-test/credentials",
            ),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.ends_with(SHOWN), "{stdout}");
    // The values were in AWS, not in the built-in store (which now holds the short one).
    assert!(stdout.contains("aws"), "{stdout}");
}
