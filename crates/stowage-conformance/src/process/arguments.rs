//! Arguments a plugin must refuse with `invalid_argument` itself (proto-docs/methods.md,
//! "Limits" and `storage_delete`). The host's own client refuses them before sending, so
//! these cases send them as raw frames over a configured connection. Nothing here writes
//! unless the plugin wrongly accepts a request; the one case that writes a document
//! deletes it again.

use std::time::Instant;

use stowage_host::PluginCommand;
use stowage_protocol::service::{StowagePluginRequest as Req, StowagePluginResponse as Resp};
use stowage_protocol::{
    Bytes, Capability, CountQuery, DocumentKey, ErrorCode, ListQuery, MAX_COLLECTION_LEN,
    MAX_GROUP_LEN, MAX_NAME_LEN, Precondition, Role, SecretBytes, SecretListQuery, SecretRef,
};

use super::{COLLECTION, Connection, code_of, outcome};
use crate::{CaseResult, Outcome, Report, ensure, parse_capabilities, run_id};

use Capability::{
    SecretsDelete, SecretsList, SecretsPut, SecretsResolve, StorageCount, StorageDelete,
    StorageGet, StorageList, StoragePut,
};

const STORAGE_CASES: [&str; 2] = [
    "storage.delete_absent_is_invalid_argument",
    "storage.invalid_names_are_invalid_argument",
];
const SECRETS_CASES: [&str; 1] = ["secrets.invalid_keys_are_invalid_argument"];

pub(super) async fn cases(r: &mut Report, command: &PluginCommand, role: Role, config_json: &str) {
    let names: &[&str] = match role {
        Role::Storage => &STORAGE_CASES,
        Role::Secrets => &SECRETS_CASES,
    };
    // Learn what the plugin declares for this role, so that cases skip what it lacks.
    let started = Instant::now();
    let caps = match declared(command, role, config_json).await {
        Ok(caps) => caps,
        Err(why) => {
            for name in names {
                r.cases.push(CaseResult {
                    name: (*name).to_owned(),
                    outcome: Outcome::Fail(format!("cannot configure the plugin: {why}")),
                    duration: started.elapsed(),
                });
            }
            return;
        }
    };
    let group = format!("refused-{}", run_id());
    match role {
        Role::Storage => storage_cases(r, command, config_json, &caps, &group).await,
        Role::Secrets => secrets_cases(r, command, config_json, &caps).await,
    }
}

async fn declared(
    command: &PluginCommand,
    role: Role,
    config_json: &str,
) -> Result<Vec<Capability>, String> {
    let mut conn = Connection::start(command).await?;
    let info = conn.configure(role, config_json).await;
    let _ = conn.close().await;
    Ok(parse_capabilities(&info?.capabilities))
}

/// A value for messages: short ones quoted, long ones described.
fn shown(value: &str) -> String {
    if value.len() <= 16 {
        format!("{value:?}")
    } else {
        let first = value.chars().next().unwrap_or(' ');
        format!(
            "{} bytes ({} chars) of {first:?}",
            value.len(),
            value.chars().count()
        )
    }
}

/// Collections, groups, names (and secret keys) and prefixes that break the contract's
/// limits: every plugin answers each with `invalid_argument`.
fn bad_collections() -> Vec<String> {
    vec![
        String::new(),
        "c".repeat(MAX_COLLECTION_LEN + 1),
        ".".into(),
        "..".into(),
        "a/b".into(),
        "a b".into(),
        "é".into(),
        "a\n".into(),
    ]
}

fn bad_groups() -> Vec<String> {
    vec![
        "g".repeat(MAX_GROUP_LEN + 1),
        // 258 bytes in 86 characters: limits count UTF-8 bytes.
        "日".repeat(MAX_GROUP_LEN / 3 + 1),
        "a\nb".into(),
        "a\u{7f}b".into(),
        "a\u{9f}b".into(),
    ]
}

fn bad_names() -> Vec<String> {
    vec![
        String::new(),
        "n".repeat(MAX_NAME_LEN + 1),
        "日".repeat(MAX_NAME_LEN / 3 + 1),
        "a\nb".into(),
        "\u{0}".into(),
        "a\u{9f}b".into(),
    ]
}

fn bad_prefixes() -> Vec<String> {
    vec![
        "p".repeat(MAX_NAME_LEN + 1),
        "日".repeat(MAX_NAME_LEN / 3 + 1),
        "a\nb".into(),
        "\u{7f}".into(),
    ]
}

/// Sends each request and collects those not answered `invalid_argument`.
async fn expect_refused(
    conn: &mut Connection,
    requests: Vec<(String, Req)>,
) -> Result<Vec<String>, String> {
    let mut wrong = Vec::new();
    for (what, request) in requests {
        let answer = conn.call(request).await?;
        if code_of(&answer) != Some(ErrorCode::InvalidArgument) {
            wrong.push(format!("{what}: {}", outcome(&answer)));
        }
    }
    Ok(wrong)
}

fn verdict(wrong: Vec<String>) -> Result<(), String> {
    if wrong.is_empty() {
        return Ok(());
    }
    let shown: Vec<&str> = wrong.iter().take(6).map(String::as_str).collect();
    let more = wrong.len().saturating_sub(shown.len());
    Err(format!(
        "{} request(s) breaking the limits were not answered invalid_argument: {}{}",
        wrong.len(),
        shown.join("; "),
        if more > 0 {
            format!("; and {more} more")
        } else {
            String::new()
        }
    ))
}

async fn storage_cases(
    r: &mut Report,
    command: &PluginCommand,
    config_json: &str,
    caps: &[Capability],
    group: &str,
) {
    r.case(STORAGE_CASES[0], caps, &[StorageDelete], || async {
        let mut conn = Connection::start(command).await?;
        let result = async {
            let key = DocumentKey::new(COLLECTION, group, "delete-absent");
            conn.configure(Role::Storage, config_json).await?;
            let delete_absent = || Req::StorageDelete {
                key: key.clone(),
                precondition: Precondition::Absent,
            };
            let answer = conn.call(delete_absent()).await?;
            ensure!(
                code_of(&answer) == Some(ErrorCode::InvalidArgument),
                "delete with Absent of a missing document answered {}; expected invalid_argument",
                outcome(&answer)
            );
            if !caps.contains(&StoragePut) {
                return Ok(());
            }
            let put = Req::StoragePut {
                key: key.clone(),
                value: Bytes(b"x".to_vec()),
                precondition: Precondition::Any,
            };
            if let Some(code) = code_of(&conn.call(put).await?) {
                return Err(format!("writing {key} failed: {code}"));
            }
            let answer = conn.call(delete_absent()).await?;
            let refused = code_of(&answer) == Some(ErrorCode::InvalidArgument);
            let still_there = !caps.contains(&StorageGet)
                || code_of(&conn.call(Req::StorageGet { key: key.clone() }).await?).is_none();
            let _ = conn
                .call(Req::StorageDelete {
                    key: key.clone(),
                    precondition: Precondition::Any,
                })
                .await;
            ensure!(
                refused,
                "delete with Absent of an existing document answered {}; expected invalid_argument",
                outcome(&answer)
            );
            ensure!(
                still_there,
                "a refused delete (Absent) removed the document"
            );
            Ok(())
        }
        .await;
        let _ = conn.close().await;
        result
    })
    .await;

    r.case(STORAGE_CASES[1], caps, &[], || async {
        let mut keys: Vec<(String, DocumentKey)> = Vec::new();
        for c in bad_collections() {
            keys.push((
                format!("collection {}", shown(&c)),
                DocumentKey::new(c, group, "n"),
            ));
        }
        for g in bad_groups() {
            keys.push((
                format!("group {}", shown(&g)),
                DocumentKey::new(COLLECTION, g, "n"),
            ));
        }
        for n in bad_names() {
            keys.push((
                format!("name {}", shown(&n)),
                DocumentKey::new(COLLECTION, group, n),
            ));
        }
        let mut requests = Vec::new();
        for (what, key) in &keys {
            if caps.contains(&StorageGet) {
                let key = key.clone();
                requests.push((format!("storage.get, {what}"), Req::StorageGet { key }));
            }
            if caps.contains(&StoragePut) {
                let request = Req::StoragePut {
                    key: key.clone(),
                    value: Bytes(b"x".to_vec()),
                    precondition: Precondition::Absent,
                };
                requests.push((format!("storage.put, {what}"), request));
            }
            if caps.contains(&StorageDelete) {
                let request = Req::StorageDelete {
                    key: key.clone(),
                    precondition: Precondition::Any,
                };
                requests.push((format!("storage.delete, {what}"), request));
            }
        }
        // Queries: (what, collection, group, prefix).
        let mut queries: Vec<(String, String, String, String)> = Vec::new();
        for c in bad_collections() {
            queries.push((
                format!("collection {}", shown(&c)),
                c,
                group.into(),
                String::new(),
            ));
        }
        for g in bad_groups() {
            queries.push((
                format!("group {}", shown(&g)),
                COLLECTION.into(),
                g,
                String::new(),
            ));
        }
        for p in bad_prefixes() {
            queries.push((
                format!("prefix {}", shown(&p)),
                COLLECTION.into(),
                group.into(),
                p,
            ));
        }
        for (what, collection, group, prefix) in queries {
            if caps.contains(&StorageList) {
                let query = ListQuery {
                    collection: collection.clone(),
                    group: group.clone(),
                    prefix: prefix.clone(),
                    page_size: 1,
                    page_token: None,
                };
                requests.push((format!("storage.list, {what}"), Req::StorageList { query }));
            }
            if caps.contains(&StorageCount) {
                let query = CountQuery {
                    collection,
                    group,
                    prefix,
                };
                requests.push((
                    format!("storage.count, {what}"),
                    Req::StorageCount { query },
                ));
            }
        }
        let mut conn = Connection::start(command).await?;
        let result = async {
            conn.configure(Role::Storage, config_json).await?;
            verdict(expect_refused(&mut conn, requests).await?)
        }
        .await;
        let _ = conn.close().await;
        result
    })
    .await;
}

async fn secrets_cases(
    r: &mut Report,
    command: &PluginCommand,
    config_json: &str,
    caps: &[Capability],
) {
    r.case(SECRETS_CASES[0], caps, &[], || async {
        let missing = format!("stowage-conformance-{}-missing", run_id());
        let mut conn = Connection::start(command).await?;
        let result = async {
            conn.configure(Role::Secrets, config_json).await?;
            let mut wrong = Vec::new();
            if caps.contains(&SecretsResolve) {
                // Each reference is answered in its own slot: the valid one still resolves.
                for key in bad_names() {
                    let refs = vec![SecretRef::new(key.clone()), SecretRef::new(missing.clone())];
                    let answer = conn.call(Req::SecretsResolve { refs }).await?;
                    let Resp::SecretsResolve(answers) = &answer else {
                        wrong.push(format!("secrets.resolve answered {}", outcome(&answer)));
                        continue;
                    };
                    let slot = |i: usize| match answers.get(i) {
                        None => "nothing".to_owned(),
                        Some(Ok(_)) => "success".to_owned(),
                        Some(Err(e)) => e.code.to_string(),
                    };
                    let (first, second) = (slot(0), slot(1));
                    if first != "invalid_argument" || second != "not_found" {
                        wrong.push(format!(
                            "secrets.resolve of key {} then a valid missing key: answered \
                             {first}, {second}; expected invalid_argument, not_found (each \
                             reference in its own slot)",
                            shown(&key)
                        ));
                    }
                }
            }
            let mut requests = Vec::new();
            for key in bad_names() {
                if caps.contains(&SecretsPut) {
                    let request = Req::SecretsPut {
                        key: key.clone(),
                        value: SecretBytes::from("x"),
                    };
                    requests.push((format!("secrets.put, key {}", shown(&key)), request));
                }
                if caps.contains(&SecretsDelete) {
                    let request = Req::SecretsDelete { key: key.clone() };
                    requests.push((format!("secrets.delete, key {}", shown(&key)), request));
                }
            }
            if caps.contains(&SecretsList) {
                for prefix in bad_prefixes() {
                    let what = format!("secrets.list, prefix {}", shown(&prefix));
                    let query = SecretListQuery {
                        prefix,
                        page_size: 1,
                        page_token: None,
                    };
                    requests.push((what, Req::SecretsList { query }));
                }
            }
            wrong.extend(expect_refused(&mut conn, requests).await?);
            verdict(wrong)
        }
        .await;
        let _ = conn.close().await;
        result
    })
    .await;
}
