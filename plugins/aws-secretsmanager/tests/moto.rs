//! The plugin against a real moto server on 127.0.0.1: the conformance kit, and the cases
//! the kit does not cover (versions, JSON properties, binary storage, ownership, pagination
//! past one AWS page, batches, unreachable endpoints, missing credentials).
//!
//! Every test uses its own name prefix, so the tests share one moto safely.

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread")]
async fn the_conformance_kit_passes_against_moto() {
    let prefix = unique("conformance");
    let results = conformance_run_with_env(&moto_config(&prefix, json!({})), moto_env()).await;
    let skipped: Vec<&str> = results
        .iter()
        .filter(|r| r.outcome != Outcome::Pass)
        .map(|r| r.name.as_str())
        .collect();
    eprintln!(
        "{} cases, {} passed; not passed: {skipped:?}",
        results.len(),
        results.len() - skipped.len()
    );
    stowage_tests::assert_conformant(&results, results.len());
    assert!(results.len() >= 10, "{results:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn versions_by_stage_and_by_id() {
    let s = handle(&unique("versions"), json!({}));
    let v1 = put(&s, "db", b"one").await;
    let v2 = put(&s, "db", b"two").await;
    assert_ne!(v1, v2);
    assert_eq!(get(&s, SecretRef::new("db")).await.unwrap(), b"two");
    let at = |v: &str| SecretRef::with_version("db", v);
    assert_eq!(get(&s, at("AWSCURRENT")).await.unwrap(), b"two");
    assert_eq!(get(&s, at("AWSPREVIOUS")).await.unwrap(), b"one");
    assert_eq!(get(&s, at("stage:AWSPREVIOUS")).await.unwrap(), b"one");
    assert_eq!(get(&s, at(&v1)).await.unwrap(), b"one");
    assert_eq!(get(&s, at(&format!("id:{v2}"))).await.unwrap(), b"two");
    assert_eq!(code_of(&s, at("NO-SUCH-STAGE")).await, ErrorCode::NotFound);
    assert_eq!(
        code_of(&s, at("00000000-0000-0000-0000-000000000000")).await,
        ErrorCode::NotFound
    );
    assert_eq!(
        code_of(&s, at("id:short")).await,
        ErrorCode::InvalidArgument
    );
    // Listing shows the current version id.
    let page = s.list_all("").await.unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].key, "db");
    assert_eq!(page[0].version.as_deref(), Some(v2.as_str()));
    // A pinned version in a batch is read on its own, next to batched current values.
    put(&s, "other", b"o").await;
    let answers = s
        .resolve(&[SecretRef::new("db"), at(&v1), SecretRef::new("other")])
        .await
        .unwrap();
    let values: Vec<Vec<u8>> = answers
        .into_iter()
        .map(|a| a.unwrap().expose().to_vec())
        .collect();
    assert_eq!(values, [b"two".to_vec(), b"one".to_vec(), b"o".to_vec()]);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn json_properties() {
    let s = handle(&unique("json"), json!({}));
    put(
        &s,
        "db",
        br#"{"username":"admin","port":5432,"tls":{"mode":"verify-full"},"a#b":"hash"}"#,
    )
    .await;
    put(&s, "plain", b"not json").await;
    assert_eq!(
        get(&s, SecretRef::new("db#username")).await.unwrap(),
        b"admin"
    );
    assert_eq!(get(&s, SecretRef::new("db#port")).await.unwrap(), b"5432");
    assert_eq!(
        get(&s, SecretRef::new("db#tls")).await.unwrap(),
        br#"{"mode":"verify-full"}"#
    );
    assert_eq!(get(&s, SecretRef::new("db#a#b")).await.unwrap(), b"hash");
    assert_eq!(
        code_of(&s, SecretRef::new("db#password")).await,
        ErrorCode::NotFound
    );
    assert_eq!(
        code_of(&s, SecretRef::new("plain#x")).await,
        ErrorCode::InvalidArgument
    );
    assert_eq!(
        code_of(&s, SecretRef::new("missing#x")).await,
        ErrorCode::NotFound
    );
    // Properties work in batches and on older versions too.
    put(&s, "db", br#"{"username":"root"}"#).await;
    let answers = s
        .resolve(&[
            SecretRef::new("db#username"),
            SecretRef::with_version("db#username", "AWSPREVIOUS"),
            SecretRef::new("db"),
            SecretRef::new("db#port"),
        ])
        .await
        .unwrap();
    assert_eq!(answers[0].as_ref().unwrap().expose(), b"root");
    assert_eq!(answers[1].as_ref().unwrap().expose(), b"admin");
    assert_eq!(
        answers[2].as_ref().unwrap().expose(),
        br#"{"username":"root"}"#
    );
    assert_eq!(answers[3].as_ref().unwrap_err().code(), ErrorCode::NotFound);
    // A property cannot be written or deleted.
    let e = s
        .put("db#username", SecretBytes::from("x"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidArgument);
    let e = s.delete("db#username").await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidArgument);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn binary_and_text_are_stored_as_aws_expects() {
    let prefix = unique("binary");
    let aws = sdk();
    let s = handle(&prefix, json!({}));
    let bytes: Vec<u8> = (0..=255).collect();
    put(&s, "bin", &bytes).await;
    put(&s, "text", "grüße".as_bytes()).await;
    assert_eq!(get(&s, SecretRef::new("bin")).await.unwrap(), bytes);
    assert_eq!(
        get(&s, SecretRef::new("text")).await.unwrap(),
        "grüße".as_bytes()
    );
    let raw = aws
        .get_secret_value()
        .secret_id(format!("{prefix}bin"))
        .send()
        .await
        .unwrap();
    assert_eq!(raw.secret_binary.unwrap().into_inner(), bytes);
    assert!(raw.secret_string.is_none());
    let raw = aws
        .get_secret_value()
        .secret_id(format!("{prefix}text"))
        .send()
        .await
        .unwrap();
    assert_eq!(raw.secret_string.as_deref(), Some("grüße"));
    s.shutdown().await;

    // write-as = "binary": UTF-8 text is stored as SecretBinary too.
    let s = handle(&prefix, json!({"write-as": "binary"}));
    put(&s, "forced", b"text").await;
    let raw = aws
        .get_secret_value()
        .secret_id(format!("{prefix}forced"))
        .send()
        .await
        .unwrap();
    assert_eq!(raw.secret_binary.unwrap().into_inner(), b"text");
    assert_eq!(get(&s, SecretRef::new("forced")).await.unwrap(), b"text");
    s.shutdown().await;

    // write-as = "string": bytes that are not UTF-8 are refused.
    let s = handle(&prefix, json!({"write-as": "string"}));
    let e = s
        .put("bad", SecretBytes::new(vec![0xff, 0xfe]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidArgument);
    // Values over the AWS limit are refused before any call.
    let e = s
        .put("big", SecretBytes::new(vec![b'x'; 65_537]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidArgument);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_not_created_by_stowage_are_not_overwritten_or_deleted() {
    let prefix = unique("owner");
    let aws = sdk();
    aws.create_secret()
        .name(format!("{prefix}foreign"))
        .secret_string("theirs")
        .tags(Tag::builder().key("team").value("payments").build())
        .send()
        .await
        .unwrap();
    let s = handle(
        &prefix,
        json!({"tags": {"team": "platform", "env": "test"}}),
    );
    // Reading is fine.
    assert_eq!(get(&s, SecretRef::new("foreign")).await.unwrap(), b"theirs");
    let e = s
        .put("foreign", SecretBytes::from("mine"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::PermissionDenied, "{e}");
    assert!(e.to_string().contains("allow-unmanaged"), "{e}");
    assert!(!e.to_string().contains("mine") && !e.to_string().contains("theirs"));
    let e = s.delete("foreign").await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::PermissionDenied, "{e}");
    assert_eq!(get(&s, SecretRef::new("foreign")).await.unwrap(), b"theirs");

    // What the plugin creates carries managed-by plus the configured tags.
    put(&s, "own", b"x").await;
    let described = aws
        .describe_secret()
        .secret_id(format!("{prefix}own"))
        .send()
        .await
        .unwrap();
    let tags: BTreeMap<&str, &str> = described
        .tags()
        .iter()
        .map(|t| (t.key().unwrap(), t.value().unwrap()))
        .collect();
    assert_eq!(
        tags,
        BTreeMap::from([
            ("env", "test"),
            ("managed-by", "stowage"),
            ("team", "platform")
        ])
    );
    s.shutdown().await;

    // allow-unmanaged lifts the refusal.
    let s = handle(
        &prefix,
        json!({"allow-unmanaged": true, "force-delete": true}),
    );
    put(&s, "foreign", b"mine").await;
    assert_eq!(get(&s, SecretRef::new("foreign")).await.unwrap(), b"mine");
    s.delete("foreign").await.unwrap();
    assert_eq!(
        code_of(&s, SecretRef::new("foreign")).await,
        ErrorCode::NotFound
    );
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn listing_and_batches_span_more_than_one_aws_page() {
    let prefix = unique("pages");
    let aws = sdk();
    // 230 secrets: three ListSecrets pages of 100, and batches beyond BatchGetSecretValue's 20.
    let keys: Vec<String> = (0..230).map(|i| format!("k{i:03}")).collect();
    for key in &keys {
        aws.create_secret()
            .name(format!("{prefix}{key}"))
            .secret_string(format!("value-{key}"))
            .tags(Tag::builder().key("managed-by").value("stowage").build())
            .send()
            .await
            .unwrap();
    }
    // A neighbour whose name only extends the prefix must not show up.
    aws.create_secret()
        .name(format!("{}x", prefix.trim_end_matches('/')))
        .secret_string("neighbour")
        .send()
        .await
        .unwrap();
    let s = handle(&prefix, json!({}));
    let mut listed = Vec::new();
    let mut token = None;
    let mut pages = Vec::new();
    loop {
        let page = s
            .list(&SecretListQuery {
                prefix: String::new(),
                page_size: 100,
                page_token: token.take(),
            })
            .await
            .unwrap();
        pages.push(page.items.len());
        listed.extend(page.items.into_iter().map(|m| m.key));
        match page.next_page_token {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    assert_eq!(pages, [100, 100, 30]);
    assert_eq!(listed, keys);
    let k1: Vec<String> = s
        .list_all("k1")
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.key)
        .collect();
    assert_eq!(k1, keys[100..200]);
    let e = s
        .list(&SecretListQuery {
            prefix: "k2".into(),
            page_size: 10,
            page_token: Some("k1".into()),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidArgument);

    // One batch of 45 references: 43 found (some twice), one missing, one invalid.
    let mut refs: Vec<SecretRef> = keys[..43].iter().map(SecretRef::new).collect();
    refs.push(SecretRef::new("missing"));
    refs.push(SecretRef::new("bad name"));
    refs.push(SecretRef::new("k000"));
    let answers = s.resolve(&refs).await.unwrap();
    assert_eq!(answers.len(), refs.len());
    for (r, a) in refs.iter().zip(&answers) {
        match r.key.as_str() {
            "missing" => assert_eq!(a.as_ref().unwrap_err().code(), ErrorCode::NotFound),
            "bad name" => assert_eq!(a.as_ref().unwrap_err().code(), ErrorCode::InvalidArgument),
            k => assert_eq!(
                a.as_ref().unwrap().expose(),
                format!("value-{k}").as_bytes(),
                "{k}"
            ),
        }
    }
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_of_a_thousand_resolves_in_one_call() {
    use futures::StreamExt as _;
    let prefix = unique("thousand");
    let aws = sdk();
    let keys: Vec<String> = (0..1000).map(|i| format!("s{i:04}")).collect();
    futures::stream::iter(&keys)
        .for_each_concurrent(8, |key| {
            let (aws, prefix) = (&aws, &prefix);
            async move {
                aws.create_secret()
                    .name(format!("{prefix}{key}"))
                    .secret_string(format!("value-{key}"))
                    .tags(Tag::builder().key("managed-by").value("stowage").build())
                    .send()
                    .await
                    .unwrap();
            }
        })
        .await;
    // 1,000 references in one call of one kept-alive process: the plugin splits them into
    // BatchGetSecretValue calls of 20, a few in flight.
    let s = handle(&prefix, json!({}));
    let mut refs: Vec<SecretRef> = keys.iter().map(SecretRef::new).collect();
    refs[999] = SecretRef::new("missing");
    let answers = s.resolve(&refs).await.unwrap();
    assert_eq!(answers.len(), refs.len());
    for (key, answer) in keys.iter().zip(&answers).take(999) {
        assert_eq!(
            answer.as_ref().unwrap().expose(),
            format!("value-{key}").as_bytes(),
            "{key}"
        );
    }
    assert_eq!(
        answers[999].as_ref().unwrap_err().code(),
        ErrorCode::NotFound
    );
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_recovery_window_restore_and_force() {
    let prefix = unique("delete");
    let aws = sdk();
    let s = handle(&prefix, json!({"recovery-window-days": 7}));
    put(&s, "a", b"1").await;
    s.delete("a").await.unwrap();
    assert_eq!(code_of(&s, SecretRef::new("a")).await, ErrorCode::NotFound);
    assert_eq!(s.delete("a").await.unwrap_err().code(), ErrorCode::NotFound);
    assert!(s.list_all("").await.unwrap().is_empty());
    // Still recoverable at AWS...
    let described = aws
        .describe_secret()
        .secret_id(format!("{prefix}a"))
        .send()
        .await
        .unwrap();
    assert!(described.deleted_date.is_some());
    // ...and a new put brings the name back with the new value.
    put(&s, "a", b"2").await;
    assert_eq!(get(&s, SecretRef::new("a")).await.unwrap(), b"2");
    assert_eq!(
        s.delete("never").await.unwrap_err().code(),
        ErrorCode::NotFound
    );
    s.shutdown().await;

    let s = handle(&prefix, json!({"force-delete": true}));
    s.delete("a").await.unwrap();
    let e = aws
        .describe_secret()
        .secret_id(format!("{prefix}a"))
        .send()
        .await
        .unwrap_err();
    assert!(
        e.as_service_error()
            .is_some_and(|e| e.is_resource_not_found_exception()),
        "{e:?}"
    );
    s.shutdown().await;
}
