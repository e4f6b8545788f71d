//! Copying one document: read the source, read the destination if the listing showed
//! one, decide ([`plan`]), and write with a precondition on what was read.

use stowage_protocol::{Document, DocumentKey, ErrorCode};

use super::plan::{Plan, digest, plan};
use super::report::Outcome;
use crate::{Error, StorageHandle};

/// Copies `key` from `from` to `to`. `listed` says whether the destination's listing had
/// the document (if not, no read is spent on it: the create's `Absent` precondition
/// catches one written since). Returns the outcome and the document's size.
pub(crate) async fn copy_one(
    from: &StorageHandle,
    to: &StorageHandle,
    key: &DocumentKey,
    listed: bool,
    overwrite: bool,
) -> (Outcome, u64) {
    let source = match from.get(key).await {
        Ok(doc) => doc,
        Err(e) if e.code() == ErrorCode::NotFound => return (Outcome::Vanished, 0),
        Err(e) => return (failed(&e), 0),
    };
    let size = source.value.len() as u64;
    let source_digest = digest(source.value.as_slice());
    let mut destination = if listed {
        match read(to, key).await {
            Ok(d) => d,
            Err(e) => return (failed(&e), size),
        }
    } else {
        None
    };
    // At most two rounds: a create that finds the document created meanwhile looks again
    // once; every other refusal is reported, never retried over someone else's write.
    for round in 0..2 {
        let current = destination
            .as_ref()
            .map(|d| (digest(d.value.as_slice()), d.version.clone()));
        let decided = plan(
            &source_digest,
            current.as_ref().map(|(d, v)| (d.as_str(), v.as_str())),
            overwrite,
        );
        let Some(precondition) = decided.precondition() else {
            let outcome = match decided {
                Plan::Identical => Outcome::Identical,
                _ => Outcome::Differs,
            };
            return (outcome, size);
        };
        match to.put(key, source.value.clone(), precondition).await {
            Ok(_) if decided == Plan::Create => return (Outcome::Copied, size),
            Ok(_) => return (Outcome::Overwritten, size),
            Err(e) if e.code() == ErrorCode::AlreadyExists && round == 0 => {
                destination = match read(to, key).await {
                    Ok(d) => d,
                    Err(e) => return (failed(&e), size),
                };
            }
            Err(e) => return (failed(&e), size),
        }
    }
    unreachable!("the second round always returns")
}

/// The destination's document, or none.
async fn read(to: &StorageHandle, key: &DocumentKey) -> Result<Option<Document>, Error> {
    match to.get(key).await {
        Ok(doc) => Ok(Some(doc)),
        Err(e) if e.code() == ErrorCode::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn failed(e: &Error) -> Outcome {
    Outcome::Failed {
        code: e.code().as_str().to_owned(),
        message: e.to_string(),
    }
}

/// Whether an error is about the backend rather than one document: after one, launching
/// more copies only repeats it.
pub(crate) fn is_backend_wide(code: &str) -> bool {
    !matches!(
        code,
        "not_found" | "already_exists" | "conflict" | "invalid_argument"
    )
}
