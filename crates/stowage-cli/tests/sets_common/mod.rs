//! What the credential and parameter set tests share: running the CLI in a home.

#![allow(dead_code, unused_imports)]

pub use std::path::Path;
pub use std::process::{Command, Output, Stdio};

pub const STOWAGE: &str = env!("CARGO_BIN_EXE_stowage");

pub fn command(home: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(STOWAGE);
    cmd.args(args)
        .env("STOWAGE_HOME", home)
        .env_remove("STOWAGE_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

pub fn run(home: &Path, args: &[&str]) -> Output {
    command(home, args).output().unwrap()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)))
}

pub const CREDS: &str = "\
schemaType: CredentialSet
schemaVersion: 1.0.1
name: prod
labels:
  env: prod
credentials:
  - name: kubeconfig
    source:
      path: /home/me/.kube/config
  - name: db-password
    source:
      value: hunter2
";
