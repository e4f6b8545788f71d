//! `cargo xtask test`: the whole suite, with every setup step it needs.

use std::process::Command;

use crate::{cargo, run_checked};

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
    if !have("python3") {
        return Err("python3 is needed for the Python reference plugin's tests; install it (Debian: apt-get install python3)".into());
    }
    // Build everything first so integration tests find every binary they spawn.
    run_checked(cargo().args(["build", "--workspace", "--all-targets"]))?;
    if have_nextest() {
        // nextest runs each test in its own process and ends with one summary line;
        // it does not run doctests, so those go first.
        run_checked(cargo().args(["test", "--workspace", "--doc"]))?;
        run_checked(
            cargo()
                .args(["nextest", "run", "--workspace", "--no-fail-fast"])
                .args(args),
        )
    } else {
        run_checked(
            cargo()
                .args(["test", "--workspace", "--no-fail-fast"])
                .args(args),
        )
    }
}
