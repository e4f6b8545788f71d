//! Secrets cases.

use stowage_protocol::{Capability, ErrorCode, SecretBytes, SecretListQuery, SecretRef};

use stowage_host::SecretsHandle;

use crate::{CaseResult, Report, ensure, run_id};

use Capability::{
    SecretsDelete as Delete, SecretsList as List, SecretsPut as Put, SecretsResolve as Resolve,
};

/// Runs every secrets case against `secrets`, which declares `caps`. `missing_key` is a
/// key that must not exist (read-only backends have their own key syntax).
pub async fn run_secrets_cases(
    secrets: &SecretsHandle,
    caps: &[Capability],
    missing_key: Option<&str>,
) -> Vec<CaseResult> {
    let prefix = format!("stowage-conformance-{}-", run_id());
    let key = |k: &str| format!("{prefix}{k}");
    let s = secrets;
    let mut r = Report::default();

    r.case(
        "secrets.resolve_missing_is_not_found",
        caps,
        &[Resolve],
        || async {
            let missing = missing_key
                .map(str::to_owned)
                .unwrap_or_else(|| key("never-written"));
            match s.resolve_one(&SecretRef::new(missing)).await {
                Ok(v) => Err(format!("resolved a missing key to {v:?}")),
                Err(e) if e.code() == ErrorCode::NotFound => Ok(()),
                Err(e) => Err(format!("expected not_found, got {}: {e}", e.code())),
            }
        },
    )
    .await;

    r.case(
        "secrets.put_resolve_delete",
        caps,
        &[Put, Resolve, Delete],
        || async {
            s.put(&key("round-trip"), SecretBytes::from("s3cr3t"))
                .await
                .map_err(|e| e.to_string())?;
            let v = s
                .resolve_one(&SecretRef::new(key("round-trip")))
                .await
                .map_err(|e| e.to_string())?;
            ensure!(
                v.expose() == b"s3cr3t",
                "resolved a different value ({} bytes)",
                v.len()
            );
            s.put(&key("round-trip"), SecretBytes::from("rotated"))
                .await
                .map_err(|e| e.to_string())?;
            let v = s
                .resolve_one(&SecretRef::new(key("round-trip")))
                .await
                .map_err(|e| e.to_string())?;
            ensure!(
                v.expose() == b"rotated",
                "a new value did not replace the old one"
            );
            s.delete(&key("round-trip"))
                .await
                .map_err(|e| e.to_string())?;
            match s.resolve_one(&SecretRef::new(key("round-trip"))).await {
                Err(e) if e.code() == ErrorCode::NotFound => Ok(()),
                Err(e) => Err(format!("after delete expected not_found, got {}", e.code())),
                Ok(_) => Err("a deleted secret still resolves".into()),
            }
        },
    )
    .await;

    r.case("secrets.binary_value", caps, &[Put, Resolve], || async {
        let value: Vec<u8> = vec![0, 1, 255, b'\n', 0];
        match s.put(&key("binary"), SecretBytes::new(value.clone())).await {
            Ok(_) => {}
            // A store that holds only text (Porter's plugins: proto3 strings) refuses bytes
            // that are not UTF-8 with invalid_argument, and stores nothing in their place.
            Err(e) if e.code() == ErrorCode::InvalidArgument => {
                return match s.resolve_one(&SecretRef::new(key("binary"))).await {
                    Err(e) if e.code() == ErrorCode::NotFound => Ok(()),
                    Err(e) => Err(format!(
                        "after refusing a binary value, resolving it gave {} instead of not_found",
                        e.code()
                    )),
                    Ok(_) => Err("a refused binary value was stored anyway".into()),
                };
            }
            Err(e) => return Err(e.to_string()),
        }
        let v = s
            .resolve_one(&SecretRef::new(key("binary")))
            .await
            .map_err(|e| e.to_string())?;
        ensure!(
            v.expose() == value.as_slice(),
            "binary value did not round-trip"
        );
        Ok(())
    })
    .await;

    r.case(
        "secrets.batch_with_found_and_missing",
        caps,
        &[Put, Resolve],
        || async {
            s.put(&key("a"), SecretBytes::from("A"))
                .await
                .map_err(|e| e.to_string())?;
            s.put(&key("b"), SecretBytes::from("B"))
                .await
                .map_err(|e| e.to_string())?;
            let refs = [
                SecretRef::new(key("a")),
                SecretRef::new(key("missing")),
                SecretRef::new(key("b")),
            ];
            let answers = s.resolve(&refs).await.map_err(|e| e.to_string())?;
            ensure!(
                answers.len() == 3,
                "3 references got {} answers",
                answers.len()
            );
            ensure!(
                matches!(&answers[0], Ok(v) if v.expose() == b"A"),
                "first answer wrong"
            );
            ensure!(
                matches!(&answers[1], Err(e) if e.code() == ErrorCode::NotFound),
                "second answer should be not_found"
            );
            ensure!(
                matches!(&answers[2], Ok(v) if v.expose() == b"B"),
                "third answer wrong (answers out of order?)"
            );
            Ok(())
        },
    )
    .await;

    r.case("secrets.list_by_prefix", caps, &[Put, List], || async {
        for k in ["list-2", "list-1", "list-3", "other"] {
            s.put(&key(k), SecretBytes::from("x"))
                .await
                .map_err(|e| e.to_string())?;
        }
        let listed = s.list_all(&key("list-")).await.map_err(|e| e.to_string())?;
        let names: Vec<String> = listed.into_iter().map(|m| m.key).collect();
        ensure!(
            names == [key("list-1"), key("list-2"), key("list-3")],
            "listed {names:?}"
        );
        Ok(())
    })
    .await;

    r.case(
        "secrets.key_at_limit_is_stored_or_refused_cleanly",
        caps,
        &[Resolve],
        || async {
            // A store may have key rules of its own, narrower than the contract's (a vault's
            // name length, its character set): it refuses a key it cannot hold with
            // invalid_argument. Anything else must work, at exactly the limit.
            let long_key = key("") + &"k".repeat(stowage_protocol::MAX_NAME_LEN - key("").len());
            let refused_cleanly = |e: &stowage_host::Error| e.code() == ErrorCode::InvalidArgument;
            if caps.contains(&Put) {
                match s.put(&long_key, SecretBytes::from("at the limit")).await {
                    Err(e) if refused_cleanly(&e) => {}
                    Err(e) => {
                        return Err(format!(
                            "storing a {}-byte key failed with {}; a key the store cannot hold \
                             is refused with invalid_argument",
                            long_key.len(),
                            e.code()
                        ));
                    }
                    Ok(_) => {
                        let v = s
                            .resolve_one(&SecretRef::new(long_key.clone()))
                            .await
                            .map_err(|e| format!("resolving a stored 255-byte key: {e}"))?;
                        ensure!(
                            v.expose() == b"at the limit",
                            "a 255-byte key resolved to a different value"
                        );
                        if caps.contains(&Delete) {
                            s.delete(&long_key)
                                .await
                                .map_err(|e| format!("deleting a 255-byte key: {e}"))?;
                        }
                    }
                }
            } else {
                match s.resolve_one(&SecretRef::new(long_key.clone())).await {
                    Err(e) if refused_cleanly(&e) || e.code() == ErrorCode::NotFound => {}
                    Err(e) => {
                        return Err(format!(
                            "resolving a missing 255-byte key failed with {}; expected \
                             not_found, or invalid_argument from a store with narrower keys",
                            e.code()
                        ));
                    }
                    Ok(_) => return Err("a 255-byte key that was never written resolved".into()),
                }
            }
            if caps.contains(&List) {
                s.list(&SecretListQuery {
                    prefix: long_key.clone(),
                    page_size: 1,
                    page_token: None,
                })
                .await
                .map_err(|e| format!("a list by a 255-byte prefix failed: {e}"))?;
            }
            Ok(())
        },
    )
    .await;

    if caps.contains(&List)
        && caps.contains(&Delete)
        && let Ok(items) = s.list_all(&prefix).await
    {
        for m in items {
            let _ = s.delete(&m.key).await;
        }
    }
    r.cases
}
