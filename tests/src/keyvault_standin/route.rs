//! The stand-in's routing: which REST operation a request is, and its answer.

use super::*;

impl Shared {
    pub(super) fn route(
        &self,
        method: &Method,
        path: &str,
        query: &BTreeMap<String, String>,
        body: &[u8],
        reader: bool,
    ) -> Resp {
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let write = !matches!(*method, Method::GET);
        if write && reader {
            let op = match (method, segments.first()) {
                (&Method::PUT, _) => "set",
                (&Method::DELETE, Some(&"deletedsecrets")) => "purge",
                (&Method::DELETE, _) => "delete",
                _ => "recover",
            };
            return error(
                403,
                "Forbidden",
                &format!(
                    "The user, group or application 'appid=04b07795-8ddb-461a-bbee-02f9e1bf7b46' does not have secrets {op} permission on key vault 'standin;location=local'. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125287"
                ),
                Some("ForbiddenByPolicy"),
            );
        }
        let mut st = self.state.lock().unwrap();
        match (method.clone(), segments.as_slice()) {
            (Method::GET, ["secrets"]) => {
                let items = st
                    .secrets
                    .values()
                    .map(|e| {
                        let v = e.versions.last().unwrap();
                        self.item(e, v, format!("{}/secrets/{}", self.url, e.name))
                    })
                    .collect();
                self.page("/secrets", query, items)
            }
            (Method::GET, ["deletedsecrets"]) => {
                let items = st
                    .deleted
                    .values()
                    .map(|d| self.deleted_bundle(d))
                    .collect();
                self.page("/deletedsecrets", query, items)
            }
            (Method::PUT, ["secrets", name]) => {
                if !is_secret_name(name) {
                    return error(
                        400,
                        "BadParameter",
                        "The request URI contains an invalid name: secret names may only contain alphanumeric characters and dashes and must be between 1 and 127 characters long.",
                        None,
                    );
                }
                let key = name.to_ascii_lowercase();
                if st.deleted.contains_key(&key) {
                    return error(
                        409,
                        "Conflict",
                        &format!(
                            "Secret {name} is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the secret can only be recovered or purged."
                        ),
                        Some("ObjectIsDeletedButRecoverable"),
                    );
                }
                let Ok(params) = serde_json::from_slice::<Value>(body) else {
                    return error(
                        400,
                        "BadParameter",
                        "The request body is not valid JSON.",
                        None,
                    );
                };
                let Some(value) = params.get("value").and_then(Value::as_str) else {
                    return error(400, "BadParameter", "Property 'value' is required.", None);
                };
                if value.len() > 25 * 1024 {
                    return error(
                        400,
                        "BadParameter",
                        "The secret value is too large: the maximum is 25 KB.",
                        None,
                    );
                }
                let tags: Option<BTreeMap<String, String>> = params
                    .get("tags")
                    .and_then(|t| serde_json::from_value(t.clone()).ok());
                if tags.as_ref().is_some_and(|t| t.len() > 15) {
                    return error(
                        400,
                        "BadParameter",
                        "A secret can have at most 15 tags.",
                        None,
                    );
                }
                let version = Version {
                    id: new_version(),
                    value: value.to_owned(),
                    content_type: params
                        .get("contentType")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                    tags,
                    enabled: params
                        .pointer("/attributes/enabled")
                        .and_then(Value::as_bool)
                        .unwrap_or(true),
                    created: now(),
                };
                let entry = st.secrets.entry(key).or_insert_with(|| Entry {
                    name: name.to_string(),
                    versions: Vec::new(),
                });
                entry.versions.push(version);
                let e = entry.clone();
                json_response(200, self.bundle(&e, e.versions.last().unwrap(), true))
            }
            (Method::GET, ["secrets", name, "versions"]) => {
                let Some(e) = st.secrets.get(&name.to_ascii_lowercase()) else {
                    return not_found(name);
                };
                let items = e
                    .versions
                    .iter()
                    .map(|v| self.item(e, v, format!("{}/secrets/{}/{}", self.url, e.name, v.id)))
                    .collect();
                self.page(&format!("/secrets/{name}/versions"), query, items)
            }
            (Method::GET, ["secrets", name]) | (Method::GET, ["secrets", name, ""]) => {
                let Some(e) = st.secrets.get(&name.to_ascii_lowercase()) else {
                    return not_found(name);
                };
                let v = e.versions.last().unwrap();
                if !v.enabled {
                    return error(
                        403,
                        "Forbidden",
                        "Operation get is not allowed on a disabled secret.",
                        Some("SecretDisabled"),
                    );
                }
                json_response(200, self.bundle(e, v, true))
            }
            (Method::GET, ["secrets", name, version]) => {
                let Some(e) = st.secrets.get(&name.to_ascii_lowercase()) else {
                    return not_found(&format!("{name}/{version}"));
                };
                let Some(v) = e
                    .versions
                    .iter()
                    .find(|v| v.id.eq_ignore_ascii_case(version))
                else {
                    return not_found(&format!("{name}/{version}"));
                };
                if !v.enabled {
                    return error(
                        403,
                        "Forbidden",
                        "Operation get is not allowed on a disabled secret.",
                        Some("SecretDisabled"),
                    );
                }
                json_response(200, self.bundle(e, v, true))
            }
            (Method::DELETE, ["secrets", name]) => {
                let key = name.to_ascii_lowercase();
                let Some(entry) = st.secrets.remove(&key) else {
                    return not_found(name);
                };
                let completes_at_ms = now_ms() + st.delete_latency.as_millis();
                let d = Deleted {
                    entry,
                    deleted: now(),
                    completes_at_ms,
                };
                let body = self.deleted_bundle(&d);
                st.deleted.insert(key, d);
                json_response(200, body)
            }
            (Method::GET, ["deletedsecrets", name]) => {
                match st.deleted.get(&name.to_ascii_lowercase()) {
                    Some(d) => json_response(200, self.deleted_bundle(d)),
                    None => error(
                        404,
                        "SecretNotFound",
                        &format!("Deleted Secret not found: {name}"),
                        None,
                    ),
                }
            }
            (Method::DELETE, ["deletedsecrets", name]) => {
                let key = name.to_ascii_lowercase();
                let Some(d) = st.deleted.get(&key) else {
                    return error(
                        404,
                        "SecretNotFound",
                        &format!("Deleted Secret not found: {name}"),
                        None,
                    );
                };
                if st.purge_protection {
                    return error(
                        403,
                        "Forbidden",
                        &format!(
                            "Operation \"purge\" is not allowed because purge protection is enabled for this vault. Key Vault service will automatically purge it after the retention period has passed. (secret {name})"
                        ),
                        Some("OperationNotAllowed"),
                    );
                }
                if now_ms() < d.completes_at_ms {
                    return error(
                        409,
                        "Conflict",
                        &format!("Secret {name} is currently being deleted."),
                        Some("ObjectIsBeingDeleted"),
                    );
                }
                st.deleted.remove(&key);
                Response::builder()
                    .status(StatusCode::NO_CONTENT)
                    .body(Full::new(Bytes::new()))
                    .unwrap()
            }
            (Method::POST, ["deletedsecrets", name, "recover"]) => {
                let key = name.to_ascii_lowercase();
                let Some(d) = st.deleted.remove(&key) else {
                    return error(
                        404,
                        "SecretNotFound",
                        &format!("Deleted Secret not found: {name}"),
                        None,
                    );
                };
                let body = self.bundle(&d.entry, d.entry.versions.last().unwrap(), false);
                st.secrets.insert(key, d.entry);
                json_response(200, body)
            }
            _ => error(
                400,
                "BadParameter",
                &format!("The request URI {path} is not a Key Vault secrets operation."),
                None,
            ),
        }
    }
}
