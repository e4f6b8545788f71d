//! Sets in a storage backend: collection `credentials` or `parameters`, group = namespace
//! (empty for the global namespace), name = set name, value = the set as JSON in the file
//! format, with `created`/`modified` maintained here.
//!
//! `apply` replaces a set with the content of a file. It reads the stored set, then
//! writes with a precondition on what it read: `Absent` when there was none, `Version(v)`
//! of the document read otherwise. When someone else created or changed the set in
//! between, the write is refused and `apply` fails with [`Error::Conflict`]; it does not
//! retry. Retrying would replace the other writer's content with a file written before
//! that content was seen — exactly the silent lost update the precondition is there to
//! prevent — so the choice to overwrite is left to the user (run `apply` again).

use std::time::SystemTime;

use stowage_host::StorageHandle;
use stowage_host::protocol::{DocumentKey, ErrorCode, Precondition};

use crate::error::{Error, Result};
use crate::parse::{Format, parse};
use crate::set::{SetKind, ValueSet};

/// A set as stored, with its document version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredSet {
    /// The set, with name and namespace from its storage key.
    pub set: ValueSet,
    /// The storage document's version.
    pub version: String,
}

/// What an `apply` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// The set did not exist and was created.
    Created,
    /// The set existed with other content and was replaced.
    Updated,
    /// The set existed with the same content; nothing was written.
    Unchanged,
}

impl ApplyOutcome {
    /// `created`, `updated`, `unchanged`.
    pub fn as_str(self) -> &'static str {
        match self {
            ApplyOutcome::Created => "created",
            ApplyOutcome::Updated => "updated",
            ApplyOutcome::Unchanged => "unchanged",
        }
    }
}

/// The result of an `apply`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// What happened.
    pub outcome: ApplyOutcome,
    /// The set as now stored (with its timestamps).
    pub stored: StoredSet,
    /// The version that was replaced (none for a create).
    pub previous_version: Option<String>,
}

/// The sets of one kind in one storage backend.
pub struct SetStore {
    storage: StorageHandle,
    kind: SetKind,
}

impl SetStore {
    /// Sets of `kind` in `storage`.
    pub fn new(storage: StorageHandle, kind: SetKind) -> Self {
        SetStore { storage, kind }
    }

    /// The kind of sets this store holds.
    pub fn kind(&self) -> SetKind {
        self.kind
    }

    fn key(&self, namespace: &str, name: &str) -> DocumentKey {
        DocumentKey::new(self.kind.collection(), namespace, name)
    }

    /// Creates or replaces `set` (its namespace and name say where), keeping `created`
    /// from the stored set and setting `modified`; a set whose content is unchanged is not
    /// written. A concurrent create or change gives [`Error::Conflict`] (see the module
    /// docs for why there is no retry).
    pub async fn apply(&self, mut set: ValueSet) -> Result<Applied> {
        let key = self.key(&set.namespace, &set.name);
        let current = match self.storage.get(&key).await {
            Ok(doc) => Some(doc),
            Err(e) if e.code() == ErrorCode::NotFound => None,
            Err(e) => return Err(e.into()),
        };
        let now = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
        let (precondition, previous_version) = match &current {
            None => {
                set.created = Some(now.clone());
                (Precondition::Absent, None)
            }
            Some(doc) => {
                // A damaged stored set is replaced (that is what apply is for); it only
                // loses its creation time.
                let old = self
                    .decode(&set.namespace, &set.name, doc.value.as_slice())
                    .ok();
                if let Some(old) = &old
                    && old.same_content(&set)
                {
                    return Ok(Applied {
                        outcome: ApplyOutcome::Unchanged,
                        stored: StoredSet {
                            set: old.clone(),
                            version: doc.version.clone(),
                        },
                        previous_version: Some(doc.version.clone()),
                    });
                }
                set.created = old.and_then(|o| o.created).or(Some(now.clone()));
                (
                    Precondition::Version(doc.version.clone()),
                    Some(doc.version.clone()),
                )
            }
        };
        set.modified = Some(now);
        self.write(set, precondition, previous_version).await
    }

    /// Replaces the set `read` (as returned by [`SetStore::get`]) with `edited`, only if
    /// it is still at the version read: the write behind `edit`, where the user may take
    /// minutes. A concurrent change gives [`Error::Conflict`]. `edited` keeps `read`'s
    /// name, namespace and creation time.
    pub async fn replace(&self, mut edited: ValueSet, read: &StoredSet) -> Result<Applied> {
        edited.name = read.set.name.clone();
        edited.namespace = read.set.namespace.clone();
        if edited.same_content(&read.set) {
            return Ok(Applied {
                outcome: ApplyOutcome::Unchanged,
                stored: read.clone(),
                previous_version: Some(read.version.clone()),
            });
        }
        edited.created = read.set.created.clone();
        edited.modified = Some(humantime::format_rfc3339_seconds(SystemTime::now()).to_string());
        self.write(
            edited,
            Precondition::Version(read.version.clone()),
            Some(read.version.clone()),
        )
        .await
    }

    /// Writes `set` under `precondition`; `previous_version` is what it replaces (none for
    /// a create).
    async fn write(
        &self,
        set: ValueSet,
        precondition: Precondition,
        previous_version: Option<String>,
    ) -> Result<Applied> {
        let key = self.key(&set.namespace, &set.name);
        let bytes = serde_json::to_vec_pretty(&set.to_json()).unwrap_or_default();
        match self.storage.put(&key, bytes, precondition).await {
            Ok(version) => Ok(Applied {
                outcome: if previous_version.is_some() {
                    ApplyOutcome::Updated
                } else {
                    ApplyOutcome::Created
                },
                stored: StoredSet { set, version },
                previous_version,
            }),
            Err(e) if matches!(e.code(), ErrorCode::Conflict | ErrorCode::AlreadyExists) => {
                Err(Error::Conflict {
                    kind: self.kind,
                    namespace: key.group,
                    name: key.name,
                    created: previous_version.is_none(),
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The set `name` in `namespace`.
    pub async fn get(&self, namespace: &str, name: &str) -> Result<StoredSet> {
        let doc = match self.storage.get(&self.key(namespace, name)).await {
            Ok(doc) => doc,
            Err(e) if e.code() == ErrorCode::NotFound => {
                return Err(self.not_found(namespace, name));
            }
            Err(e) => return Err(e.into()),
        };
        Ok(StoredSet {
            set: self.decode(namespace, name, doc.value.as_slice())?,
            version: doc.version,
        })
    }

    /// Every set of `namespace` that has all the `labels`, by name. A set deleted while
    /// listing is left out.
    pub async fn list(
        &self,
        namespace: &str,
        labels: &[(String, String)],
    ) -> Result<Vec<StoredSet>> {
        let metas = self
            .storage
            .list_all(self.kind.collection(), namespace, "")
            .await?;
        let mut sets = Vec::with_capacity(metas.len());
        for meta in metas {
            match self.get(namespace, &meta.name).await {
                Ok(stored) if stored.set.has_labels(labels) => sets.push(stored),
                Ok(_) | Err(Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        sets.sort_by(|a, b| a.set.name.cmp(&b.set.name));
        Ok(sets)
    }

    /// Deletes the set `name` in `namespace`.
    pub async fn delete(&self, namespace: &str, name: &str) -> Result<()> {
        match self
            .storage
            .delete(&self.key(namespace, name), Precondition::Any)
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if e.code() == ErrorCode::NotFound => Err(self.not_found(namespace, name)),
            Err(e) => Err(e.into()),
        }
    }

    fn not_found(&self, namespace: &str, name: &str) -> Error {
        Error::NotFound {
            kind: self.kind,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }

    /// A stored document back into a set; the key, not the document, says where it is.
    fn decode(&self, namespace: &str, name: &str, value: &[u8]) -> Result<ValueSet> {
        let corrupt = |problem| Error::Corrupt {
            kind: self.kind,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            problem,
        };
        let text = String::from_utf8_lossy(value);
        let mut set = parse(&text, Format::Json, self.kind).map_err(corrupt)?;
        set.namespace = namespace.to_owned();
        set.name = name.to_owned();
        Ok(set)
    }
}
