//! `cargo xtask test`: the whole suite, with every setup step it needs.

use crate::{cargo, run_checked};

pub fn run(args: &[String]) -> Result<(), String> {
    // Build everything first so integration tests find every binary they spawn.
    run_checked(cargo().args(["build", "--workspace", "--all-targets"]))?;
    let mut test = cargo();
    test.args(["test", "--workspace"]).args(args);
    run_checked(&mut test)
}
