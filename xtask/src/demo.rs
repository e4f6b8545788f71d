//! `cargo xtask demo`: Stowage's main job, shown step by step.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::install::{Linking, install};

struct Demo<'a> {
    bin: &'a Path,
    home: &'a Path,
    path: std::ffi::OsString,
}

impl Demo<'_> {
    /// Runs `stowage ARGS` with `stdin`, printing the command line and its output.
    fn step(&self, args: &[&str], stdin: Option<&str>) -> Result<String, String> {
        let shown_stdin = stdin
            .map(|s| format!("printf '{s}' | "))
            .unwrap_or_default();
        println!("\n$ {shown_stdin}stowage {}", args.join(" "));
        let mut child = Command::new(self.bin.join("stowage"))
            .args(args)
            .env("STOWAGE_HOME", self.home)
            .env("PATH", &self.path)
            .env_remove("STOWAGE_CONFIG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run stowage: {e}"))?;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.unwrap_or("").as_bytes())
            .map_err(|e| e.to_string())?;
        let out = child.wait_with_output().map_err(|e| e.to_string())?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        for line in stdout
            .lines()
            .chain(String::from_utf8_lossy(&out.stderr).lines())
        {
            println!("  {line}");
        }
        if !out.status.success() {
            return Err(format!(
                "stowage {} failed ({})",
                args.join(" "),
                out.status
            ));
        }
        Ok(stdout)
    }

    fn tour(&self, storage: &str, secrets: &str) -> Result<(), String> {
        let b = ["--backend", storage];
        let version = self.step(
            &[
                "storage",
                "put",
                b[0],
                b[1],
                "installations",
                "wordpress",
                "-g",
                "dev",
                "--if-absent",
            ],
            Some(r#"{"bundle":"wordpress:1.0"}"#),
        )?;
        self.step(
            &[
                "storage",
                "put",
                b[0],
                b[1],
                "installations",
                "mysql",
                "-g",
                "dev",
            ],
            Some(r#"{"bundle":"mysql:8"}"#),
        )?;
        self.step(
            &["storage", "list", b[0], b[1], "installations", "-g", "dev"],
            None,
        )?;
        self.step(
            &[
                "storage",
                "get",
                b[0],
                b[1],
                "installations",
                "wordpress",
                "-g",
                "dev",
            ],
            None,
        )?;
        println!("  (an update that names the version it read succeeds; a stale one is refused:)");
        self.step(
            &[
                "storage",
                "put",
                b[0],
                b[1],
                "installations",
                "wordpress",
                "-g",
                "dev",
                "--if-version",
                version.trim(),
            ],
            Some(r#"{"bundle":"wordpress:1.1"}"#),
        )?;
        if self
            .step(
                &[
                    "storage",
                    "put",
                    b[0],
                    b[1],
                    "installations",
                    "wordpress",
                    "-g",
                    "dev",
                    "--if-version",
                    version.trim(),
                ],
                Some("{}"),
            )
            .is_ok()
        {
            return Err("a stale write was accepted".into());
        }
        let s = ["--backend", secrets];
        self.step(
            &["secrets", "set", s[0], s[1], "db-password"],
            Some("correct-horse"),
        )?;
        self.step(&["secrets", "list", s[0], s[1]], None)?;
        self.step(&["secrets", "get", s[0], s[1], "db-password"], None)?;
        self.step(
            &["secrets", "get", s[0], s[1], "db-password", "--reveal"],
            None,
        )?;
        println!();
        Ok(())
    }
}

pub fn run() -> Result<(), String> {
    let prefix = tempfile::tempdir().map_err(|e| e.to_string())?;
    let bin = prefix.path().join("bin");
    let home = prefix.path().join("home");
    println!(
        "== building and installing into {} (debug build)",
        bin.display()
    );
    let installed = install(&bin, false, Linking::Dynamic)?;
    for p in &installed {
        println!("   {}", p.display());
    }
    let mut path = std::ffi::OsString::from(&bin);
    if let Some(p) = std::env::var_os("PATH") {
        path.push(":");
        path.push(p);
    }
    let demo = Demo {
        bin: &bin,
        home: &home,
        path,
    };

    println!(
        "\n== 1. no config at all: the built-in backends (STOWAGE_HOME={})",
        home.display()
    );
    demo.step(&["config", "show"], None)?;
    demo.tour("filesystem", "filesystem")?;
    demo.step(
        &[
            "secrets",
            "get",
            "--backend",
            "host",
            "env:HOME",
            "value:literal",
            "command:uname -s",
            "--reveal",
        ],
        None,
    )?;

    println!("\n== 2. the same through a plugin process (stowage-plugin-testkit, found on PATH)");
    let config = format!(
        "default-storage = \"shared\"\ndefault-secrets = \"shared\"\n\n\
         [storage.shared]\nplugin = \"testkit\"\n[storage.shared.config]\nroot = \"{root}\"\n\n\
         [secrets.shared]\nplugin = \"testkit\"\nkeep-alive = \"5s\"\n[secrets.shared.config]\nroot = \"{root}\"\n",
        root = prefix.path().join("plugin-data").display()
    );
    std::fs::create_dir_all(&home).map_err(|e| e.to_string())?;
    std::fs::write(home.join("config.toml"), &config).map_err(|e| e.to_string())?;
    println!("\n$ cat {}", home.join("config.toml").display());
    for line in config.lines() {
        println!("  {line}");
    }
    demo.step(&["plugins", "list"], None)?;
    demo.step(&["config", "check"], None)?;
    demo.tour("shared", "shared")?;
    println!(
        "== done: every step above ran a real `stowage` process; the plugin steps each started a plugin process."
    );
    Ok(())
}
