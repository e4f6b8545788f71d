//! Copying every document from one storage backend to another (`stowage storage migrate`):
//! the way a team moves from the local default to S3 or Azure Blob.
//!
//! ```no_run
//! # async fn demo(stowage: &stowage_host::Stowage) -> stowage_host::Result<()> {
//! use stowage_host::migrate::{MigrateOptions, migrate};
//!
//! let from = stowage.storage(Some("filesystem"))?;
//! let to = stowage.storage(Some("team"))?;
//! let report = migrate(&from, &to, &MigrateOptions::default(), &|_| {}, std::future::pending()).await?;
//! println!("{} copied, {} already there", report.copied, report.skipped_identical);
//! # Ok(()) }
//! ```
//!
//! How it works:
//!
//! 1. **Scope.** The groups to copy ([`scope`]): the source's own layout where it can
//!    enumerate it (the built-in filesystem store), else the collections and groups named.
//! 2. **Listing.** Each group is listed on both sides (all pages), so the totals (documents,
//!    bytes) are known before the first copy, and a document the destination lacks costs
//!    no read there.
//! 3. **Copying**, `concurrency` documents at a time, in key order. Each is read from the
//!    source and (if listed there) the destination, then [`plan`]ned: the same SHA-256 is
//!    skipped; a missing one is created with precondition `Absent`; one that differs is
//!    left alone and reported, or with `overwrite` replaced with precondition
//!    `Version(<the version just read>)`. A concurrent writer therefore makes a write fail
//!    (reported), never vanish. Documents carry no timestamps (versions are opaque and
//!    per-backend), so "newer" cannot be told from "different": a differing destination
//!    document is always treated as possibly newer.
//! 4. **Verification** (unless stopped early): both sides are listed again over the same
//!    groups, every document read on both, and counts and digests compared
//!    ([`Verification`]).
//!
//! Re-running is safe and cheap in writes: identical documents are skipped, so a run
//! that was interrupted continues where it stopped. When `stop` resolves (Ctrl-C), no
//! new copy starts, the copies in flight finish (each write is atomic on every backend),
//! and the report says what was done. A backend-wide error (unavailable, deadline,
//! plugin crash, denied) stops new copies too, instead of failing every document alike.
//!
//! Each backend's operations go through its handle; with a plugin, give it a kept-alive
//! process ([`Stowage::with_keep_alive`](crate::Stowage::with_keep_alive)), or every read
//! and write starts the plugin anew.

mod copy;
pub mod plan;
pub mod report;
pub mod scope;
mod verify;

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::StreamExt as _;
use stowage_protocol::{DocumentKey, PluginError};

pub use plan::{Plan, digest};
pub use report::{Failure, MigrateReport, Outcome, Verdict, Verification};
pub use scope::{GroupKey, Selection};

use crate::{Error, Result, StorageHandle};

/// How many documents are copied at once by default.
pub const DEFAULT_CONCURRENCY: usize = 8;

/// What to migrate, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MigrateOptions {
    /// Which collections and groups.
    pub selection: Selection,
    /// Replace destination documents that differ from the source.
    pub overwrite: bool,
    /// Documents copied (and verified) at once; at least 1.
    pub concurrency: usize,
    /// Compare both sides at the end.
    pub verify: bool,
}

impl Default for MigrateOptions {
    fn default() -> Self {
        MigrateOptions {
            selection: Selection::default(),
            overwrite: false,
            concurrency: DEFAULT_CONCURRENCY,
            verify: true,
        }
    }
}

/// What a migration reports as it goes, for a progress bar.
#[derive(Debug)]
pub enum Progress<'a> {
    /// The source was listed: the totals copying will go through.
    Listed {
        /// Collection/group pairs.
        groups: u64,
        /// Documents.
        documents: u64,
        /// Their bytes.
        bytes: u64,
    },
    /// One document was handled.
    Document {
        /// Which.
        key: &'a DocumentKey,
        /// What happened.
        outcome: &'a Outcome,
        /// Its size.
        bytes: u64,
    },
    /// Verification starts; it reads about `documents` documents (both sides).
    Verifying {
        /// Documents to read.
        documents: u64,
    },
    /// One document was read for verification.
    Verified {
        /// Which.
        key: &'a DocumentKey,
    },
}

/// The progress callback's type.
pub type ProgressFn<'a> = dyn Fn(Progress<'_>) + Send + Sync + 'a;

/// Copies the selected documents from `from` to `to` (see the module's documentation),
/// calling `progress` as it goes, until done or `stop` resolves. Errors about single
/// documents are in the report; the `Err` is for what stops everything before copying
/// starts (the scope, a listing) or during verification.
pub async fn migrate(
    from: &StorageHandle,
    to: &StorageHandle,
    options: &MigrateOptions,
    progress: &ProgressFn<'_>,
    stop: impl Future<Output = ()>,
) -> Result<MigrateReport> {
    let concurrency = options.concurrency.max(1);
    let groups = options
        .selection
        .resolve(from.groups().await?, from.name())
        .map_err(|m| Error::backend(from.name(), PluginError::invalid_argument(m)))?;

    let mut report = MigrateReport {
        from: from.name().to_owned(),
        to: to.name().to_owned(),
        groups: groups.len() as u64,
        ..MigrateReport::default()
    };
    // (key, whether the destination listed it)
    let mut work: Vec<(DocumentKey, bool)> = Vec::new();
    for g in &groups {
        let source = from.list_all(&g.collection, &g.group, "").await?;
        let destination: std::collections::HashSet<String> = to
            .list_all(&g.collection, &g.group, "")
            .await?
            .into_iter()
            .map(|m| m.name)
            .collect();
        for meta in source {
            report.bytes += meta.size;
            let listed = destination.contains(&meta.name);
            work.push((DocumentKey::new(&g.collection, &g.group, meta.name), listed));
        }
    }
    report.documents = work.len() as u64;
    progress(Progress::Listed {
        groups: report.groups,
        documents: report.documents,
        bytes: report.bytes,
    });

    let interrupted = AtomicBool::new(false);
    let aborted = tokio::sync::Notify::new();
    let stopped = async {
        tokio::select! {
            () = stop => interrupted.store(true, Ordering::SeqCst),
            () = aborted.notified() => {}
        }
    };
    let mut outcomes = std::pin::pin!(
        futures::stream::iter(work)
            .take_until(stopped)
            .map(|(key, listed)| async move {
                let (outcome, bytes) =
                    copy::copy_one(from, to, &key, listed, options.overwrite).await;
                (key, outcome, bytes)
            })
            .buffer_unordered(concurrency)
    );
    while let Some((key, outcome, bytes)) = outcomes.next().await {
        if let Outcome::Failed { code, message } = &outcome
            && report.aborted.is_none()
            && copy::is_backend_wide(code)
        {
            report.aborted = Some(message.clone());
            aborted.notify_one();
        }
        report.record(&key, &outcome, bytes);
        progress(Progress::Document {
            key: &key,
            outcome: &outcome,
            bytes,
        });
    }
    report.interrupted = interrupted.load(Ordering::SeqCst);
    report.not_started = report.documents - report.processed();

    if options.verify && !report.interrupted && report.aborted.is_none() {
        progress(Progress::Verifying {
            documents: 2 * report.documents,
        });
        report.verification = Some(verify::verify(from, to, &groups, concurrency, progress).await?);
    }
    Ok(report)
}

#[cfg(test)]
mod tests;
