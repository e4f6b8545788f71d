//! The README's walkthroughs, as the tests that run them read them.

use std::path::{Path, PathBuf};

/// The repository's root.
pub fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("the repository's root")
}

/// The shell block that follows `<!-- walkthrough: NAME -->` in README.md.
pub fn walkthrough_block(name: &str) -> String {
    let readme = std::fs::read_to_string(repository_root().join("README.md")).unwrap();
    let marker = format!("<!-- walkthrough: {name} -->\n```sh\n");
    let start = readme
        .find(&marker)
        .unwrap_or_else(|| panic!("README.md has no `{marker}`"))
        + marker.len();
    let len = readme[start..].find("```").expect("the block's end");
    readme[start..start + len].to_owned()
}
