//! The README's CNAB lifecycle walkthrough (`<!-- walkthrough: lifecycle -->`), run as
//! written on a copy of examples/cnab: install and upgrade recorded on the built-in
//! backends, outputs (one sensitive), then the state migrated to S3 and used there. The
//! one change: the copy's `stowage-s3.toml` points at a fresh bucket on moto (endpoint,
//! plain HTTP), which a real S3 does not need.

use std::path::Path;
use std::process::{Command, Output};

use stowage_tests::emulators;
use stowage_tests::processes::stowage_bin;
use stowage_tests::readme::{repository_root as root, walkthrough_block as block};

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn the_readme_lifecycle_walkthrough_works_as_written() {
    let work = tempfile::tempdir().unwrap();
    let examples = work.path().join("examples/cnab");
    copy_dir(&root().join("examples/cnab"), &examples);
    let (endpoint, bucket) = emulators::moto_bucket();
    let s3 = examples.join("stowage-s3.toml");
    let config = std::fs::read_to_string(&s3)
        .unwrap()
        .replace("s3://my-team-bucket/", &format!("s3://{bucket}/"))
        .replace(
            "region = \"eu-west-1\"",
            &format!("region = \"us-east-1\"\nendpoint = {endpoint:?}\nallow-http = true"),
        );
    assert!(config.contains(&bucket), "{config}");
    std::fs::write(&s3, config).unwrap();

    let home = work.path().join("home");
    let bin_dir = stowage_bin().parent().unwrap().to_owned();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap());
    let out: Output = Command::new("sh")
        .args(["-eu", "-c", &block("lifecycle")])
        .current_dir(work.path())
        .env("PATH", &path)
        .env("HOME", &home)
        .env("LC_ALL", "C")
        .env_remove("STOWAGE_HOME")
        .env_remove("STOWAGE_CONFIG")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");

    // The runs printed what they were given.
    assert!(stdout.contains("install of hello: revision "), "{stdout}");
    assert_eq!(
        stdout.matches("upgrade of hello: revision ").count(),
        2,
        "{stdout}"
    );
    // installations list, then runs list before the move to S3: install, upgrade.
    let line = stdout
        .lines()
        .find(|l| l.starts_with("hello "))
        .expect("the installation's row");
    assert!(
        line.contains("helloworld 0.1.2") && line.contains("upgrade") && line.contains("succeeded"),
        "{line}"
    );
    // outputs: the endpoint's value; the certificate only as a reference, then revealed.
    assert!(stdout.contains("https://hello.example/"), "{stdout}");
    assert!(
        stdout.contains("(sensitive, in filesystem:cnab/demo/hello/"),
        "{stdout}"
    );
    assert!(stdout.contains("-----BEGIN CERTIFICATE-----"), "{stdout}");
    // After the migration, the history is read from S3, and the third run adds to it.
    let runs_tables: Vec<&str> = stdout.split("RUN ").skip(1).collect();
    assert_eq!(runs_tables.len(), 3, "{stdout}");
    assert_eq!(runs_tables[1].matches("succeeded").count(), 2, "{stdout}");
    assert_eq!(runs_tables[2].matches("succeeded").count(), 3, "{stdout}");
    let both = format!("{stdout}{stderr}");
    assert!(both.contains("filesystem → team: "), "{both}");
    assert!(both.contains(" copied, 0 overwritten"), "{both}");

    // The state really is in the bucket now: the migrated and the new claims.
    let listed = Command::new(stowage_bin())
        .args(["storage", "list", "claims", "-g", "demo"])
        .env("PATH", &path)
        .env("HOME", &home)
        .env_remove("STOWAGE_HOME")
        .env("STOWAGE_CONFIG", &s3)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .output()
        .unwrap();
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    assert_eq!(
        text(&listed.stdout).matches("hello/").count(),
        3,
        "{}",
        text(&listed.stdout)
    );
}
