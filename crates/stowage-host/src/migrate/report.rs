//! What a migration did: per-document outcomes, the counters they add up to, the final
//! verification, and the verdict a command turns into its exit code.

use serde::Serialize;
use stowage_protocol::DocumentKey;

/// What happened to one document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Created in the destination.
    Copied,
    /// The destination held other bytes and was replaced (`overwrite`).
    Overwritten,
    /// The destination already held the same bytes.
    Identical,
    /// The destination holds other bytes and was left alone (no `overwrite`).
    Differs,
    /// The document was deleted from the source after it was listed.
    Vanished,
    /// An error; the message says which backend and why.
    Failed {
        /// The error's code (`conflict`, `unavailable`, …).
        code: String,
        /// The error.
        message: String,
    },
}

/// A document that was not copied because of an error.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// The document.
    #[serde(flatten)]
    pub key: DocumentKey,
    /// The error's code.
    pub code: String,
    /// The error.
    pub message: String,
}

/// The end-of-run check: both sides listed again over the migrated groups, every
/// document read on both and compared by SHA-256.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Verification {
    /// Documents in the source's groups.
    pub source_documents: u64,
    /// Documents in the destination's same groups (including ones the source lacks).
    pub destination_documents: u64,
    /// Source documents the destination holds with the same bytes.
    pub matching: u64,
    /// Source documents the destination lacks.
    pub missing: Vec<DocumentKey>,
    /// Source documents the destination holds with other bytes.
    pub different: Vec<DocumentKey>,
    /// Destination documents the source lacks (left alone; not an error).
    pub extra: u64,
    /// SHA-256 over the sorted `(collection, group, name, SHA-256 of the bytes)` of every
    /// source document: equal to `destination_digest` exactly when the destination's
    /// groups hold the same documents with the same bytes.
    pub source_digest: String,
    /// The same over the destination's documents in those groups.
    pub destination_digest: String,
}

impl Verification {
    /// Every source document is in the destination with the same bytes.
    pub fn complete(&self) -> bool {
        self.missing.is_empty()
            && self.different.is_empty()
            && self.matching == self.source_documents
    }
}

/// How a migration ended, in one word.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Everything was copied (or already there) and verified.
    Complete,
    /// Everything else was verified, but some destination documents differ from the
    /// source and were left alone: rerun with `overwrite` to replace them.
    Conflicts,
    /// Stopped on request before the end; a rerun continues.
    Interrupted,
    /// Copies failed, or the verification found missing or different documents.
    Incomplete,
}

/// The report of one migration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MigrateReport {
    /// The source backend.
    pub from: String,
    /// The destination backend.
    pub to: String,
    /// How many collection/group pairs were migrated.
    pub groups: u64,
    /// Documents listed in the source.
    pub documents: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Documents created in the destination.
    pub copied: u64,
    /// Destination documents replaced (`overwrite`).
    pub overwritten: u64,
    /// Documents the destination already held with the same bytes.
    pub skipped_identical: u64,
    /// Destination documents left alone because they differ (no `overwrite`).
    pub skipped_different: u64,
    /// Source documents deleted after they were listed.
    pub vanished: u64,
    /// Documents not copied because of an error.
    pub failed: u64,
    /// Documents not looked at because the run stopped first.
    pub not_started: u64,
    /// Bytes written to the destination.
    pub bytes_written: u64,
    /// The documents counted in `skipped_different`.
    pub different: Vec<DocumentKey>,
    /// The documents counted in `failed`.
    pub failures: Vec<Failure>,
    /// Stopped on request (Ctrl-C) before the end.
    pub interrupted: bool,
    /// Stopped early because the backends failed (the first such error), not one
    /// document.
    pub aborted: Option<String>,
    /// The final check; none when the run stopped early or verification was off.
    pub verification: Option<Verification>,
}

impl MigrateReport {
    /// Counts one document's outcome.
    pub fn record(&mut self, key: &DocumentKey, outcome: &Outcome, bytes: u64) {
        match outcome {
            Outcome::Copied => {
                self.copied += 1;
                self.bytes_written += bytes;
            }
            Outcome::Overwritten => {
                self.overwritten += 1;
                self.bytes_written += bytes;
            }
            Outcome::Identical => self.skipped_identical += 1,
            Outcome::Differs => {
                self.skipped_different += 1;
                self.different.push(key.clone());
            }
            Outcome::Vanished => self.vanished += 1,
            Outcome::Failed { code, message } => {
                self.failed += 1;
                self.failures.push(Failure {
                    key: key.clone(),
                    code: code.clone(),
                    message: message.clone(),
                });
            }
        }
    }

    /// Documents looked at so far.
    pub fn processed(&self) -> u64 {
        self.copied
            + self.overwritten
            + self.skipped_identical
            + self.skipped_different
            + self.vanished
            + self.failed
    }

    /// How the run ended.
    pub fn verdict(&self) -> Verdict {
        if self.interrupted {
            return Verdict::Interrupted;
        }
        if self.failed > 0 || self.aborted.is_some() || self.not_started > 0 {
            return Verdict::Incomplete;
        }
        match &self.verification {
            Some(v) if !v.missing.is_empty() => Verdict::Incomplete,
            // Differences the run did not leave on purpose (a writer changed a document
            // during the run) need a look too.
            Some(v) if v.different.iter().any(|k| !self.different.contains(k)) => {
                Verdict::Incomplete
            }
            _ if self.skipped_different > 0 => Verdict::Conflicts,
            Some(v) if !v.complete() => Verdict::Incomplete,
            _ => Verdict::Complete,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: &str) -> DocumentKey {
        DocumentKey::new("c", "g", n)
    }

    fn verified(source: u64, matching: u64) -> Verification {
        Verification {
            source_documents: source,
            destination_documents: matching,
            matching,
            ..Verification::default()
        }
    }

    #[test]
    fn outcomes_add_up() {
        let mut r = MigrateReport::default();
        r.record(&key("a"), &Outcome::Copied, 10);
        r.record(&key("b"), &Outcome::Overwritten, 5);
        r.record(&key("c"), &Outcome::Identical, 7);
        r.record(&key("d"), &Outcome::Differs, 7);
        r.record(&key("e"), &Outcome::Vanished, 0);
        r.record(
            &key("f"),
            &Outcome::Failed {
                code: "conflict".into(),
                message: "m".into(),
            },
            3,
        );
        assert_eq!(
            (
                r.copied,
                r.overwritten,
                r.skipped_identical,
                r.skipped_different
            ),
            (1, 1, 1, 1)
        );
        assert_eq!((r.vanished, r.failed, r.bytes_written), (1, 1, 15));
        assert_eq!(r.processed(), 6);
        assert_eq!(r.different, [key("d")]);
        assert_eq!(r.failures[0].code, "conflict");
    }

    #[test]
    fn verdicts() {
        let mut r = MigrateReport {
            verification: Some(verified(2, 2)),
            ..MigrateReport::default()
        };
        assert_eq!(r.verdict(), Verdict::Complete);

        r.record(&key("a"), &Outcome::Differs, 1);
        r.verification = Some(Verification {
            different: vec![key("a")],
            ..verified(2, 1)
        });
        assert_eq!(r.verdict(), Verdict::Conflicts);

        // A difference the run did not leave on purpose.
        r.verification = Some(Verification {
            different: vec![key("a"), key("b")],
            ..verified(2, 0)
        });
        assert_eq!(r.verdict(), Verdict::Incomplete);

        r.verification = Some(Verification {
            missing: vec![key("c")],
            ..verified(2, 1)
        });
        assert_eq!(r.verdict(), Verdict::Incomplete);

        r.interrupted = true;
        assert_eq!(r.verdict(), Verdict::Interrupted);
    }
}
