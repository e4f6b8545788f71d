//! Which `(collection, group)` pairs a migration covers.
//!
//! The wire protocol lists one collection and group at a time and has no call that
//! enumerates them, so the scope comes from one of two places: the source backend's own
//! layout where it can tell (the built-in filesystem store,
//! [`StorageHandle::groups`](crate::StorageHandle::groups)), filtered by `--collection`
//! and `--group`; or, for any other source, exactly the collections and groups named
//! (every collection with every group).

use serde::Serialize;

/// One collection and group: the unit a listing covers.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct GroupKey {
    /// The collection.
    pub collection: String,
    /// The group inside it (may be empty).
    pub group: String,
}

impl std::fmt::Display for GroupKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{:?}", self.collection, self.group)
    }
}

/// Which part of the source to migrate: every collection (group) when empty, else only
/// those named.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selection {
    /// Only these collections (all when empty).
    pub collections: Vec<String>,
    /// Only these groups (all when empty).
    pub groups: Vec<String>,
}

impl Selection {
    /// The groups to migrate, sorted, given what the source could enumerate (`None`: it
    /// cannot). An error says what to name when the source cannot enumerate.
    pub fn resolve(
        &self,
        enumerated: Option<Vec<(String, String)>>,
        source: &str,
    ) -> Result<Vec<GroupKey>, String> {
        let mut out: Vec<GroupKey> = match enumerated {
            Some(all) => all
                .into_iter()
                .filter(|(c, g)| {
                    (self.collections.is_empty() || self.collections.contains(c))
                        && (self.groups.is_empty() || self.groups.contains(g))
                })
                .map(|(collection, group)| GroupKey { collection, group })
                .collect(),
            None if !self.collections.is_empty() && !self.groups.is_empty() => self
                .collections
                .iter()
                .flat_map(|c| {
                    self.groups.iter().map(|g| GroupKey {
                        collection: c.clone(),
                        group: g.clone(),
                    })
                })
                .collect(),
            None => {
                return Err(format!(
                    "backend '{source}' cannot enumerate its collections and groups (the plugin \
                     protocol lists one collection and group at a time), so name them: \
                     --collection C (repeatable) and --group G (repeatable; --group '' is the \
                     empty group)"
                ));
            }
        };
        out.sort();
        out.dedup();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(c, g)| (c.to_string(), g.to_string()))
            .collect()
    }

    fn keys(p: &[(&str, &str)]) -> Vec<GroupKey> {
        p.iter()
            .map(|(c, g)| GroupKey {
                collection: c.to_string(),
                group: g.to_string(),
            })
            .collect()
    }

    #[test]
    fn an_enumerable_source_is_filtered() {
        let all = pairs(&[("claims", "dev"), ("claims", ""), ("installations", "dev")]);
        let everything = Selection::default();
        assert_eq!(
            everything.resolve(Some(all.clone()), "fs").unwrap(),
            keys(&[("claims", ""), ("claims", "dev"), ("installations", "dev")])
        );
        let claims = Selection {
            collections: vec!["claims".into()],
            groups: vec![],
        };
        assert_eq!(
            claims.resolve(Some(all.clone()), "fs").unwrap(),
            keys(&[("claims", ""), ("claims", "dev")])
        );
        let dev = Selection {
            collections: vec![],
            groups: vec!["dev".into()],
        };
        assert_eq!(
            dev.resolve(Some(all), "fs").unwrap(),
            keys(&[("claims", "dev"), ("installations", "dev")])
        );
    }

    #[test]
    fn other_sources_need_both_named() {
        let e = Selection {
            collections: vec!["claims".into()],
            groups: vec![],
        }
        .resolve(None, "s3")
        .unwrap_err();
        assert!(e.contains("backend 's3' cannot enumerate"), "{e}");
        let both = Selection {
            collections: vec!["b".into(), "a".into(), "a".into()],
            groups: vec!["x".into(), "".into()],
        };
        assert_eq!(
            both.resolve(None, "s3").unwrap(),
            keys(&[("a", ""), ("a", "x"), ("b", ""), ("b", "x")])
        );
    }
}
