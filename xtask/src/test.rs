//! `cargo xtask test`: the whole suite, with every setup step it needs.

use std::process::Command;

use crate::{cargo, emulators, run_checked};

fn have_nextest() -> bool {
    cargo()
        .args(["nextest", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn have(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

pub fn run(args: &[String]) -> Result<(), String> {
    for (program, why) in [
        (
            "python3",
            "the Python reference plugin and the moto emulator (Debian: apt-get install python3 python3-venv)",
        ),
        ("npm", "the Azurite emulator (Debian: apt-get install npm)"),
    ] {
        if !have(program) {
            return Err(format!("{program} is needed for {why}"));
        }
    }
    let extra_path = emulators::install()?;
    let mut path = std::env::join_paths(&extra_path).map_err(|e| e.to_string())?;
    if let Some(p) = std::env::var_os("PATH") {
        if !path.is_empty() {
            path.push(":");
        }
        path.push(p);
    }
    // Build everything first so integration tests find every binary they spawn, including
    // other packages' (the `stowage` CLI, and the blob plugin for tests/tests/leases.rs).
    run_checked(cargo().args(["build", "--workspace", "--all-targets"]))?;
    let running = emulators::start(&path)?;
    let with_env = |cmd: &mut Command| {
        cmd.env("PATH", &path);
        for (k, v) in &running.env {
            cmd.env(k, v);
        }
    };
    let result = if have_nextest() {
        // nextest runs each test in its own process and ends with one summary line;
        // it does not run doctests, so those go first.
        let mut doc = cargo();
        doc.args(["test", "--workspace", "--doc"]);
        with_env(&mut doc);
        run_checked(&mut doc).and_then(|()| {
            let mut test = cargo();
            test.args(["nextest", "run", "--workspace", "--no-fail-fast"])
                .args(args);
            with_env(&mut test);
            run_checked(&mut test)
        })
    } else {
        let mut test = cargo();
        test.args(["test", "--workspace", "--no-fail-fast"])
            .args(args);
        with_env(&mut test);
        run_checked(&mut test)
    };
    drop(running);
    result
}
