//! Golden frames: every message of protocol 1, in both codecs, byte for byte.
//!
//! `proto-docs/golden/` holds, for each message, the exact JSON payload
//! (`<name>.json`) and the whole bincode and JSON frames in hex (`<name>.bincode.hex`,
//! `<name>.json.hex`, length prefix included). This test encodes the Rust types and compares:
//! an upgrade of tarpc, serde or bincode, or a changed field, that would silently change
//! the wire fails here instead of in third-party plugins.
//!
//! After an intended change of the contract, regenerate with
//! `STOWAGE_UPDATE_GOLDEN=1 cargo test -p stowage-protocol --test golden`, and update
//! proto-docs and the protocol version as the versioning policy says.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;
use stowage_protocol::service::{StowagePluginRequest as Req, StowagePluginResponse as Resp};
use stowage_protocol::*;
use tarpc::trace;

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto-docs/golden")
}

fn context() -> tarpc::context::Context {
    let mut ctx = tarpc::context::current();
    ctx.deadline = Instant::now() + Duration::from_secs(30);
    ctx.trace_context = trace::Context::default();
    ctx
}

fn request(id: u64, message: Req) -> tarpc::ClientMessage<Req> {
    tarpc::ClientMessage::Request(tarpc::Request {
        context: context(),
        id,
        message,
    })
}

fn response(id: u64, message: Resp) -> tarpc::Response<Resp> {
    tarpc::Response {
        request_id: id,
        message: Ok(message),
    }
}

/// The deadline travels as time remaining, which differs on every run: pin it to 30 s.
fn pin_deadline_json(mut json: String) -> String {
    if let Some(start) = json.find("\"deadline\":{") {
        let end = start + json[start..].find('}').unwrap() + 1;
        json.replace_range(start..end, "\"deadline\":{\"secs\":30,\"nanos\":0}");
    }
    json
}

fn pin_deadline_bincode(mut bytes: Vec<u8>, is_request: bool) -> Vec<u8> {
    if is_request {
        // u32 variant index (0 = Request), then the deadline: u64 secs, u32 nanos.
        bytes[4..12].copy_from_slice(&30u64.to_le_bytes());
        bytes[12..16].copy_from_slice(&0u32.to_le_bytes());
    }
    bytes
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut f = (payload.len() as u32).to_be_bytes().to_vec();
    f.extend_from_slice(payload);
    f
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::new();
    for (i, chunk) in bytes.chunks(16).enumerate() {
        out.push_str(&format!("{:08x}  ", i * 16));
        let cells: Vec<String> = chunk.iter().map(|b| format!("{b:02x}")).collect();
        out.push_str(&format!("{:<48}", cells.join(" ")));
        out.push_str(" |");
        out.extend(chunk.iter().map(|&b| {
            if (0x20..0x7f).contains(&b) {
                b as char
            } else {
                '.'
            }
        }));
        out.push_str("|\n");
    }
    out
}

struct Golden {
    name: &'static str,
    json: String,
    bincode: Vec<u8>,
}

fn golden<T: Serialize>(name: &'static str, message: &T, is_request: bool) -> Golden {
    let json = String::from_utf8(Codec::Json.encode(message).unwrap()).unwrap();
    let bincode = Codec::Bincode.encode(message).unwrap();
    Golden {
        name,
        json: pin_deadline_json(json),
        bincode: pin_deadline_bincode(bincode, is_request),
    }
}

fn key() -> DocumentKey {
    DocumentKey::new("claims", "dev", "wordpress")
}

fn all_messages() -> Vec<Golden> {
    let configure = ConfigureRequest {
        backend: "team".into(),
        role: Role::Storage,
        config_json: r#"{"url":"memory://"}"#.into(),
        host: "stowage-host/0.1.0".into(),
    };
    let info = PluginInfo {
        name: "blob".into(),
        version: "0.1.0".into(),
        protocol_version: 1,
        capabilities: vec!["storage.get".into(), "storage.put".into()],
    };
    let not_found = PluginError::not_found("document claims/\"dev\"/\"wordpress\" not found");
    let unavailable =
        PluginError::unavailable("throttled").with_retry_after(Duration::from_millis(1500));
    vec![
        golden(
            "configure.request",
            &request(1, Req::Configure { request: configure }),
            true,
        ),
        golden(
            "configure.response",
            &response(1, Resp::Configure(Ok(info))),
            false,
        ),
        golden(
            "configure.error",
            &response(
                1,
                Resp::Configure(Err(PluginError::invalid_argument(
                    "invalid config for backend 'team': missing field `url`",
                ))),
            ),
            false,
        ),
        golden(
            "storage_get.request",
            &request(2, Req::StorageGet { key: key() }),
            true,
        ),
        golden(
            "storage_get.response",
            &response(
                2,
                Resp::StorageGet(Ok(Document {
                    value: Bytes(b"{\"a\":1}".to_vec()),
                    version: "3-0a1b2c3d".into(),
                })),
            ),
            false,
        ),
        golden(
            "storage_get.not_found",
            &response(2, Resp::StorageGet(Err(not_found))),
            false,
        ),
        golden(
            "storage_put.request.any",
            &request(
                3,
                Req::StoragePut {
                    key: key(),
                    value: Bytes(vec![0, 1, 2, 255]),
                    precondition: Precondition::Any,
                },
            ),
            true,
        ),
        golden(
            "storage_put.request.absent",
            &request(
                3,
                Req::StoragePut {
                    key: key(),
                    value: Bytes(Vec::new()),
                    precondition: Precondition::Absent,
                },
            ),
            true,
        ),
        golden(
            "storage_put.request.version",
            &request(
                3,
                Req::StoragePut {
                    key: key(),
                    value: Bytes(b"v2".to_vec()),
                    precondition: Precondition::Version("3-0a1b2c3d".into()),
                },
            ),
            true,
        ),
        golden(
            "storage_put.response",
            &response(3, Resp::StoragePut(Ok("4-99aa00ff".into()))),
            false,
        ),
        golden(
            "storage_put.conflict",
            &response(
                3,
                Resp::StoragePut(Err(PluginError::conflict(
                    "document is at version 4-99aa00ff, not the expected 3-0a1b2c3d",
                ))),
            ),
            false,
        ),
        golden(
            "storage_delete.request",
            &request(
                4,
                Req::StorageDelete {
                    key: key(),
                    precondition: Precondition::Version("4-99aa00ff".into()),
                },
            ),
            true,
        ),
        golden(
            "storage_delete.response",
            &response(4, Resp::StorageDelete(Ok(()))),
            false,
        ),
        golden(
            "storage_list.request",
            &request(
                5,
                Req::StorageList {
                    query: ListQuery {
                        collection: "claims".into(),
                        group: "dev".into(),
                        prefix: "word".into(),
                        page_size: 2,
                        page_token: None,
                    },
                },
            ),
            true,
        ),
        golden(
            "storage_list.request.next_page",
            &request(
                6,
                Req::StorageList {
                    query: ListQuery {
                        collection: "claims".into(),
                        group: "dev".into(),
                        prefix: "".into(),
                        page_size: 0,
                        page_token: Some("wordpress".into()),
                    },
                },
            ),
            true,
        ),
        golden(
            "storage_list.response",
            &response(
                5,
                Resp::StorageList(Ok(ListPage {
                    items: vec![
                        DocumentMeta {
                            name: "wordpress".into(),
                            version: "4-99aa00ff".into(),
                            size: 7,
                        },
                        DocumentMeta {
                            name: "wordpress-2".into(),
                            version: "1-00000001".into(),
                            size: 0,
                        },
                    ],
                    next_page_token: Some("wordpress-2".into()),
                })),
            ),
            false,
        ),
        golden(
            "storage_count.request",
            &request(
                7,
                Req::StorageCount {
                    query: CountQuery {
                        collection: "claims".into(),
                        group: "".into(),
                        prefix: "".into(),
                    },
                },
            ),
            true,
        ),
        golden(
            "storage_count.response",
            &response(7, Resp::StorageCount(Ok(42))),
            false,
        ),
        golden(
            "secrets_resolve.request",
            &request(
                8,
                Req::SecretsResolve {
                    refs: vec![
                        SecretRef::new("db-password"),
                        SecretRef::with_version("api-key", "2"),
                    ],
                },
            ),
            true,
        ),
        golden(
            "secrets_resolve.response",
            &response(
                8,
                Resp::SecretsResolve(vec![
                    Ok(SecretBytes::from("s3cr3t")),
                    Err(PluginError::not_found("secret 'api-key' has no version 2")),
                ]),
            ),
            false,
        ),
        golden(
            "secrets_put.request",
            &request(
                9,
                Req::SecretsPut {
                    key: "db-password".into(),
                    value: SecretBytes::from("s3cr3t"),
                },
            ),
            true,
        ),
        golden(
            "secrets_put.response",
            &response(9, Resp::SecretsPut(Ok(Some("2".into())))),
            false,
        ),
        golden(
            "secrets_put.unavailable",
            &response(9, Resp::SecretsPut(Err(unavailable))),
            false,
        ),
        golden(
            "secrets_delete.request",
            &request(
                10,
                Req::SecretsDelete {
                    key: "db-password".into(),
                },
            ),
            true,
        ),
        golden(
            "secrets_delete.response",
            &response(10, Resp::SecretsDelete(Ok(()))),
            false,
        ),
        golden(
            "secrets_list.request",
            &request(
                11,
                Req::SecretsList {
                    query: SecretListQuery {
                        prefix: "db-".into(),
                        page_size: 100,
                        page_token: None,
                    },
                },
            ),
            true,
        ),
        golden(
            "secrets_list.response",
            &response(
                11,
                Resp::SecretsList(Ok(SecretPage {
                    items: vec![SecretMeta {
                        key: "db-password".into(),
                        version: Some("2".into()),
                    }],
                    next_page_token: None,
                })),
            ),
            false,
        ),
        golden("describe.request", &request(12, Req::Describe {}), true),
        golden(
            "describe.response",
            &response(
                12,
                Resp::Describe(Ok(PluginInfo {
                    name: "pyref".into(),
                    version: "1.0.0".into(),
                    protocol_version: 1,
                    capabilities: vec![
                        "storage.get".into(),
                        "storage.put".into(),
                        "storage.delete".into(),
                        "storage.list".into(),
                        "storage.count".into(),
                        "secrets.resolve".into(),
                        "secrets.put".into(),
                        "secrets.delete".into(),
                        "secrets.list".into(),
                    ],
                })),
            ),
            false,
        ),
        golden(
            "config_keys.request",
            &request(13, Req::ConfigKeys {}),
            true,
        ),
        golden(
            "config_keys.response",
            &response(
                13,
                Resp::ConfigKeys(Ok(ConfigKeys {
                    sensitive: vec!["client-secret".into(), "access-token".into()],
                })),
            ),
            false,
        ),
        golden(
            "cancel",
            &tarpc::ClientMessage::<Req>::Cancel {
                trace_context: trace::Context::default(),
                request_id: 3,
            },
            false,
        ),
        golden(
            "server_error.response",
            &tarpc::Response::<Resp> {
                request_id: 3,
                message: Err(tarpc::ServerError::new(
                    std::io::ErrorKind::TimedOut,
                    "deadline expired".into(),
                )),
            },
            false,
        ),
    ]
}

#[test]
fn frames_match_the_golden_files() {
    let dir = golden_dir();
    let update = std::env::var_os("STOWAGE_UPDATE_GOLDEN").is_some();
    let mut mismatches = Vec::new();
    for g in all_messages() {
        let files = [
            (format!("{}.json", g.name), format!("{}\n", g.json)),
            (
                format!("{}.json.hex", g.name),
                hex(&frame(g.json.as_bytes())),
            ),
            (format!("{}.bincode.hex", g.name), hex(&frame(&g.bincode))),
        ];
        for (file, want) in files {
            let path = dir.join(&file);
            if update {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&path, &want).unwrap();
                continue;
            }
            match std::fs::read_to_string(&path) {
                Ok(have) if have == want => {}
                Ok(_) => mismatches.push(format!("{file}: the encoding changed")),
                Err(e) => mismatches.push(format!("{file}: {e}")),
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "the wire format no longer matches proto-docs/golden:\n  {}\n\
         If the change is intended, update proto-docs (and the protocol version if it breaks \
         compatibility) and regenerate with STOWAGE_UPDATE_GOLDEN=1.",
        mismatches.join("\n  ")
    );
}

#[test]
fn golden_frames_decode_back() {
    // Every golden payload decodes with the codec it claims, in both directions' types.
    for g in all_messages() {
        let is_request =
            g.name.ends_with("request") || g.name.contains(".request.") || g.name == "cancel";
        if is_request {
            Codec::Json
                .decode::<tarpc::ClientMessage<Req>>(g.json.as_bytes())
                .unwrap();
            Codec::Bincode
                .decode::<tarpc::ClientMessage<Req>>(&g.bincode)
                .unwrap();
        } else {
            Codec::Json
                .decode::<tarpc::Response<Resp>>(g.json.as_bytes())
                .unwrap();
            Codec::Bincode
                .decode::<tarpc::Response<Resp>>(&g.bincode)
                .unwrap();
        }
    }
}
