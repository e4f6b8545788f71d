//! Storage cases on version uniqueness: every successful write yields a version never
//! returned before for that document. Compare-and-swap, and the leases and fencing built on
//! it, rest on this: a version that comes back (after a delete and re-create, or a write of
//! identical bytes) lets a writer holding the old one overwrite what it never read (ABA).

use std::collections::BTreeSet;

use stowage_host::StorageHandle;
use stowage_protocol::{Capability, DocumentKey, ErrorCode, Precondition};

use super::{Delete, Put, expect_code};
use crate::{Report, ensure};

/// How many times each case writes the same bytes again: more than once, so that a store
/// alternating between two versions (or a counter that restarts) is caught too.
const ROUNDS: usize = 3;

const SAME_BYTES: &[u8] = b"the same bytes, written again";

/// Adds a version to those seen, failing if it came back.
fn remember(seen: &mut BTreeSet<String>, version: String, when: &str) -> Result<(), String> {
    ensure!(
        !seen.contains(&version),
        "{when} returned version {version:?}, which an earlier write of this document had \
         already returned; a compare-and-swap against the old one would wrongly succeed"
    );
    seen.insert(version);
    Ok(())
}

pub(super) async fn run_version_cases(
    r: &mut Report,
    s: &StorageHandle,
    caps: &[Capability],
    key: impl Fn(&str) -> DocumentKey,
) {
    r.case(
        "storage.versions_are_new_after_delete_and_recreate",
        caps,
        &[Put, Delete],
        || async {
            let doc = key("recreated");
            let mut seen = BTreeSet::new();
            let first = s
                .put(&doc, SAME_BYTES.to_vec(), Precondition::Absent)
                .await
                .map_err(|e| format!("put: {e}"))?;
            seen.insert(first.clone());
            let mut current = first.clone();
            for round in 1..=ROUNDS {
                s.delete(&doc, Precondition::Version(current.clone()))
                    .await
                    .map_err(|e| format!("delete {round}: {e}"))?;
                current = s
                    .put(&doc, SAME_BYTES.to_vec(), Precondition::Absent)
                    .await
                    .map_err(|e| format!("put after delete {round}: {e}"))?;
                remember(
                    &mut seen,
                    current.clone(),
                    &format!("re-creating the document with the same bytes (round {round})"),
                )?;
            }
            expect_code(
                s.put(&doc, b"stale".to_vec(), Precondition::Version(first))
                    .await,
                ErrorCode::Conflict,
            )
            .map_err(|e| format!("a put at the first version, after re-creation: {e}"))
        },
    )
    .await;

    r.case(
        "storage.rewriting_identical_bytes_gives_a_new_version",
        caps,
        &[Put],
        || async {
            let doc = key("rewritten");
            let mut seen = BTreeSet::new();
            let first = s
                .put(&doc, SAME_BYTES.to_vec(), Precondition::Any)
                .await
                .map_err(|e| format!("put: {e}"))?;
            seen.insert(first.clone());
            let mut current = first.clone();
            for round in 1..=ROUNDS {
                current = s
                    .put(
                        &doc,
                        SAME_BYTES.to_vec(),
                        Precondition::Version(current.clone()),
                    )
                    .await
                    .map_err(|e| format!("rewrite {round} at the current version: {e}"))?;
                remember(
                    &mut seen,
                    current.clone(),
                    &format!("writing identical bytes again (round {round})"),
                )?;
            }
            expect_code(
                s.put(&doc, b"stale".to_vec(), Precondition::Version(first))
                    .await,
                ErrorCode::Conflict,
            )
            .map_err(|e| format!("a put at the first version, after identical rewrites: {e}"))
        },
    )
    .await;
}
