//! Storage cases; those on version uniqueness are in [`versions`].

mod versions;

use stowage_protocol::{Capability, CountQuery, DocumentKey, ErrorCode, ListQuery, Precondition};

use stowage_host::{Error, StorageHandle};

use crate::{CaseResult, Report, ensure, run_id};

use Capability::{
    StorageCount as Count, StorageDelete as Delete, StorageGet as Get, StorageList as List,
    StoragePut as Put,
};

const COLLECTION: &str = "stowage-conformance";

fn code_of(r: Result<impl std::fmt::Debug, Error>) -> Result<ErrorCode, String> {
    match r {
        Ok(v) => Err(format!("expected an error, got {v:?}")),
        Err(e) => Ok(e.code()),
    }
}

fn expect_code(r: Result<impl std::fmt::Debug, Error>, want: ErrorCode) -> Result<(), String> {
    let have = code_of(r)?;
    ensure!(have == want, "expected {want}, got {have}");
    Ok(())
}

/// Runs every storage case against `storage`, which declares `caps`.
pub async fn run_storage_cases(storage: &StorageHandle, caps: &[Capability]) -> Vec<CaseResult> {
    let group = format!("run-{}", run_id());
    let key = |name: &str| DocumentKey::new(COLLECTION, group.clone(), name);
    let s = storage;
    let mut r = Report::default();

    r.case("storage.get_missing_is_not_found", caps, &[Get], || async {
        expect_code(s.get(&key("never-written")).await, ErrorCode::NotFound)
    })
    .await;

    r.case("storage.binary_round_trip", caps, &[Put, Get], || async {
        let value: Vec<u8> = (0..=255u8).chain([0, 0, 255]).collect();
        let v = s
            .put(&key("binary"), value.clone(), Precondition::Absent)
            .await
            .map_err(|e| e.to_string())?;
        let doc = s.get(&key("binary")).await.map_err(|e| e.to_string())?;
        ensure!(
            doc.value.as_slice() == value.as_slice(),
            "read {} bytes back, not the {} written",
            doc.value.len(),
            value.len()
        );
        ensure!(
            doc.version == v,
            "get returned version {:?}, put returned {v:?}",
            doc.version
        );
        Ok(())
    })
    .await;

    r.case(
        "storage.empty_value_round_trip",
        caps,
        &[Put, Get],
        || async {
            s.put(&key("empty"), Vec::new(), Precondition::Any)
                .await
                .map_err(|e| e.to_string())?;
            let doc = s.get(&key("empty")).await.map_err(|e| e.to_string())?;
            ensure!(
                doc.value.is_empty(),
                "an empty value came back as {} bytes",
                doc.value.len()
            );
            Ok(())
        },
    )
    .await;

    r.case("storage.unicode_names", caps, &[Put, Get, List], || async {
        let weird = DocumentKey::new(
            COLLECTION,
            format!("{group}/ns 日本"),
            "ünïcødé/名前 a_b a-b.json",
        );
        s.put(&weird, b"u".to_vec(), Precondition::Any)
            .await
            .map_err(|e| e.to_string())?;
        let doc = s.get(&weird).await.map_err(|e| e.to_string())?;
        ensure!(
            doc.value.as_slice() == b"u",
            "wrong value for a unicode name"
        );
        let listed = s
            .list_all(COLLECTION, &weird.group, "")
            .await
            .map_err(|e| e.to_string())?;
        ensure!(
            listed.len() == 1 && listed[0].name == weird.name,
            "list returned {:?}",
            listed.iter().map(|m| &m.name).collect::<Vec<_>>()
        );
        let _ = s.delete(&weird, Precondition::Any).await;
        Ok(())
    })
    .await;

    r.case("storage.precondition_absent", caps, &[Put], || async {
        s.put(&key("absent"), b"1".to_vec(), Precondition::Absent)
            .await
            .map_err(|e| e.to_string())?;
        expect_code(
            s.put(&key("absent"), b"2".to_vec(), Precondition::Absent)
                .await,
            ErrorCode::AlreadyExists,
        )
    })
    .await;

    r.case(
        "storage.precondition_version",
        caps,
        &[Put, Get],
        || async {
            let v1 = s
                .put(&key("cas"), b"1".to_vec(), Precondition::Any)
                .await
                .map_err(|e| e.to_string())?;
            let v2 = s
                .put(
                    &key("cas"),
                    b"2".to_vec(),
                    Precondition::Version(v1.clone()),
                )
                .await
                .map_err(|e| e.to_string())?;
            ensure!(v1 != v2, "the version did not change on write ({v1})");
            expect_code(
                s.put(&key("cas"), b"3".to_vec(), Precondition::Version(v1))
                    .await,
                ErrorCode::Conflict,
            )?;
            let doc = s.get(&key("cas")).await.map_err(|e| e.to_string())?;
            ensure!(
                doc.value.as_slice() == b"2",
                "a refused write changed the value"
            );
            expect_code(
                s.put(
                    &key("cas-missing"),
                    b"x".to_vec(),
                    Precondition::Version(v2),
                )
                .await,
                ErrorCode::Conflict,
            )
        },
    )
    .await;

    r.case(
        "storage.delete_with_precondition",
        caps,
        &[Put, Get, Delete],
        || async {
            let v1 = s
                .put(&key("del"), b"1".to_vec(), Precondition::Any)
                .await
                .map_err(|e| e.to_string())?;
            let v2 = s
                .put(&key("del"), b"2".to_vec(), Precondition::Any)
                .await
                .map_err(|e| e.to_string())?;
            expect_code(
                s.delete(&key("del"), Precondition::Version(v1)).await,
                ErrorCode::Conflict,
            )?;
            ensure!(
                s.get(&key("del")).await.is_ok(),
                "a refused delete removed the document"
            );
            s.delete(&key("del"), Precondition::Version(v2))
                .await
                .map_err(|e| e.to_string())?;
            expect_code(s.get(&key("del")).await, ErrorCode::NotFound)?;
            expect_code(
                s.delete(&key("del"), Precondition::Any).await,
                ErrorCode::NotFound,
            )
        },
    )
    .await;

    r.case(
        "storage.list_prefix_and_pages",
        caps,
        &[Put, List],
        || async {
            for i in 0..25 {
                s.put(
                    &key(&format!("page-{i:02}")),
                    vec![i as u8],
                    Precondition::Any,
                )
                .await
                .map_err(|e| e.to_string())?;
            }
            for other in ["pagf", "other-1"] {
                s.put(&key(other), b"o".to_vec(), Precondition::Any)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            let mut query = ListQuery {
                collection: COLLECTION.into(),
                group: group.clone(),
                prefix: "page-".into(),
                page_size: 10,
                page_token: None,
            };
            let mut names = Vec::new();
            let mut pages = 0;
            loop {
                let page = s.list(&query).await.map_err(|e| e.to_string())?;
                pages += 1;
                ensure!(
                    page.items.len() <= 10,
                    "a page of size 10 held {} items",
                    page.items.len()
                );
                ensure!(pages <= 10, "pagination does not end");
                names.extend(page.items.into_iter().map(|m| m.name));
                match page.next_page_token {
                    Some(t) => query.page_token = Some(t),
                    None => break,
                }
            }
            let want: Vec<String> = (0..25).map(|i| format!("page-{i:02}")).collect();
            ensure!(names == want, "listed {names:?}");
            ensure!(pages >= 3, "25 items in pages of 10 came in {pages} pages");
            Ok(())
        },
    )
    .await;

    r.case("storage.count", caps, &[Put, Count], || async {
        for i in 0..3 {
            s.put(
                &key(&format!("count-{i}")),
                b"c".to_vec(),
                Precondition::Any,
            )
            .await
            .map_err(|e| e.to_string())?;
        }
        let n = s
            .count(&CountQuery {
                collection: COLLECTION.into(),
                group: group.clone(),
                prefix: "count-".into(),
            })
            .await
            .map_err(|e| e.to_string())?;
        ensure!(n == 3, "count said {n}, expected 3");
        Ok(())
    })
    .await;

    r.case("storage.value_at_size_limit", caps, &[Put, Get], || async {
        let value: Vec<u8> = (0..stowage_protocol::MAX_VALUE_LEN)
            .map(|i| (i % 251) as u8)
            .collect();
        s.put(&key("big"), value.clone(), Precondition::Any)
            .await
            .map_err(|e| e.to_string())?;
        let doc = s.get(&key("big")).await.map_err(|e| e.to_string())?;
        ensure!(
            doc.value.as_slice() == value.as_slice(),
            "a {}-byte value did not round-trip",
            value.len()
        );
        Ok(())
    })
    .await;

    r.case(
        "storage.names_at_limit_are_accepted",
        caps,
        &[Put, Get],
        || async {
            // Plain ASCII at exactly each limit; every store can hold these (a store's own,
            // narrower rules may only refuse names the contract allows when escaping makes
            // them longer). The collection is this run's own.
            let at_limit = |stem: &str, fill: char, len: usize| {
                stem.to_owned() + &fill.to_string().repeat(len - stem.len())
            };
            let long_collection = at_limit(
                &format!("{COLLECTION}-{}-", run_id()),
                'c',
                stowage_protocol::MAX_COLLECTION_LEN,
            );
            let long_group = at_limit(&format!("{group}-"), 'g', stowage_protocol::MAX_GROUP_LEN);
            let long_name = at_limit("", 'n', stowage_protocol::MAX_NAME_LEN);
            let keys = [
                ("collection", DocumentKey::new(&long_collection, "", "n")),
                ("group", DocumentKey::new(COLLECTION, &long_group, "n")),
                (
                    "name",
                    DocumentKey::new(COLLECTION, group.clone(), &long_name),
                ),
            ];
            let mut failures = Vec::new();
            for (part, key) in &keys {
                let len = match *part {
                    "collection" => key.collection.len(),
                    "group" => key.group.len(),
                    _ => key.name.len(),
                };
                let round_trip = async {
                    s.put(key, b"at the limit".to_vec(), Precondition::Any)
                        .await
                        .map_err(|e| format!("put: {e}"))?;
                    let doc = s.get(key).await.map_err(|e| format!("get: {e}"))?;
                    ensure!(
                        doc.value.as_slice() == b"at the limit",
                        "read back a different value"
                    );
                    Ok(())
                }
                .await;
                if let Err(why) = round_trip {
                    failures.push(format!("a {part} of {len} bytes: {why}"));
                }
            }
            // A prefix at the limit: the long name, and nothing else.
            if failures.is_empty() && caps.contains(&List) {
                let listed = s
                    .list(&ListQuery {
                        collection: COLLECTION.into(),
                        group: group.clone(),
                        prefix: long_name.clone(),
                        page_size: 10,
                        page_token: None,
                    })
                    .await;
                match listed {
                    Ok(page) if page.items.len() == 1 && page.items[0].name == long_name => {}
                    Ok(page) => failures.push(format!(
                        "a list by a {}-byte prefix returned {} items",
                        long_name.len(),
                        page.items.len()
                    )),
                    Err(e) => failures.push(format!("a list by a 255-byte prefix: {e}")),
                }
            }
            if failures.is_empty() && caps.contains(&Count) {
                let counted = s
                    .count(&CountQuery {
                        collection: COLLECTION.into(),
                        group: group.clone(),
                        prefix: long_name.clone(),
                    })
                    .await;
                match counted {
                    Ok(1) => {}
                    Ok(n) => failures.push(format!("a count by a 255-byte prefix said {n}")),
                    Err(e) => failures.push(format!("a count by a 255-byte prefix: {e}")),
                }
            }
            // The long collection and group are outside the cleanup below.
            if caps.contains(&Delete) {
                for (_, key) in &keys[..2] {
                    let _ = s.delete(key, Precondition::Any).await;
                }
            }
            ensure!(
                failures.is_empty(),
                "names within the limits were not accepted: {}",
                failures.join("; ")
            );
            Ok(())
        },
    )
    .await;

    versions::run_version_cases(&mut r, s, caps, &key).await;

    // Best-effort cleanup of everything this run wrote.
    if caps.contains(&List)
        && caps.contains(&Delete)
        && let Ok(items) = s.list_all(COLLECTION, &group, "").await
    {
        for m in items {
            let _ = s.delete(&key(&m.name), Precondition::Any).await;
        }
    }
    r.cases
}
