//! `stowage credentials edit` / `stowage parameters edit`: the stored set as YAML in
//! `$VISUAL` / `$EDITOR`, checked again before it is stored, and stored only if nobody
//! changed the set meanwhile.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use stowage_cnab::{
    Error, Format, Problem, SetFileError, SetKind, SetStore, StoredSet, namespace_words,
};
use stowage_host::Stowage;

use crate::outln;

/// Edits the set `name` of `namespace`. An edit that does not pass the checks is kept
/// (its file is named in the error) so that the work is not lost; nothing is stored.
pub async fn run(
    kind: SetKind,
    name: &str,
    namespace: &str,
    backend: Option<&str>,
    stowage: &Stowage,
) -> Result<(), Error> {
    let store = SetStore::new(stowage.storage(backend)?, kind);
    let read = store.get(namespace, name).await?;
    // A private directory (0700) and file (0600): `value` sources are in the text.
    let dir = tempfile::Builder::new()
        .prefix("stowage-edit-")
        // Explicitly: tempfile's directories follow the umask (often 0755).
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .tempdir()
        .map_err(io("cannot create a directory for the edit"))?;
    let path = dir.path().join(format!("{}.yaml", kind.collection()));
    let original = format!(
        "# {} `{name}` in {}. Save and quit to store it; an empty file stores\n\
         # nothing. `created` and `modified` are kept by Stowage.\n{}",
        kind.set_words(),
        namespace_words(namespace),
        read.set.to_yaml()
    );
    write_private(&path, &original)?;
    run_editor(&path).await?;
    let edited = std::fs::read_to_string(&path).map_err(io("cannot read the edited file"))?;
    if edited == original || edited.trim().is_empty() {
        eprintln!("no changes; nothing was stored");
        return Ok(());
    }
    let checked = stowage_cnab::parse(&edited, Format::Yaml, kind).and_then(|set| {
        same_place(&set, &read)?;
        Ok(set)
    });
    let set = match checked {
        Ok(set) => set,
        Err(mut e) => {
            let kept = dir.keep();
            e.path = Some(kept.join(path.file_name().unwrap_or_default()));
            e.problems.push(Problem {
                line: None,
                entry: None,
                message: "nothing was stored; your edit is kept in this file (apply it when fixed)"
                    .into(),
            });
            return Err(e.into());
        }
    };
    let applied = store.replace(set, &read).await?;
    outln!(
        "{} `{name}` in {}: {} (version {})",
        kind.set_words(),
        namespace_words(namespace),
        applied.outcome.as_str(),
        applied.stored.version
    );
    Ok(())
}

/// An edit may not move the set: that would be a create elsewhere, and `apply` does it.
fn same_place(set: &stowage_cnab::ValueSet, read: &StoredSet) -> Result<(), SetFileError> {
    let moved = |what: &str, from: &str, to: &str| SetFileError {
        path: None,
        problems: vec![Problem {
            line: None,
            entry: None,
            message: format!(
                "`{what}` was changed from `{from}` to `{to}`; edit cannot move a set \
                 (apply it under the new {what}, then delete the old one)"
            ),
        }],
    };
    if set.name != read.set.name {
        return Err(moved("name", &read.set.name, &set.name));
    }
    if set.namespace != read.set.namespace {
        return Err(moved("namespace", &read.set.namespace, &set.namespace));
    }
    Ok(())
}

fn write_private(path: &Path, text: &str) -> Result<(), Error> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io("cannot create the file to edit"))?;
    file.write_all(text.as_bytes())
        .map_err(io("cannot write the file to edit"))
}

/// Runs `$VISUAL`, else `$EDITOR`, else `vi`, through the shell as git does, so that an
/// editor with arguments (`code --wait`) works.
async fn run_editor(path: &Path) -> Result<(), Error> {
    let editor = ["VISUAL", "EDITOR"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|e| !e.trim().is_empty()))
        .unwrap_or_else(|| "vi".to_owned());
    let status = tokio::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("editor")
        .arg(path)
        .status()
        .await
        .map_err(io(format!("cannot run the editor `{editor}`")))?;
    if !status.success() {
        return Err(io(format!("the editor `{editor}` failed"))(
            std::io::Error::other(format!("{status}; nothing was stored")),
        ));
    }
    Ok(())
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let context = context.into();
    move |source| Error::Backend(stowage_host::Error::Io { context, source })
}
