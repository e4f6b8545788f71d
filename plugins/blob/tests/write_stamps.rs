//! Write stamps on S3 (README, "Versions"): every write through the plugin gets a new ETag
//! even for identical bytes, the stamp never reaches a reader, and objects written without
//! one (by earlier versions of the plugin, or by hand) keep working.

mod common;

use common::*;
use object_store::ObjectStoreExt as _;
use object_store::path::Path;
use stowage_host::protocol::{DocumentKey, ErrorCode, Precondition};
use stowage_host::{PluginOptions, StorageHandle};
use stowage_tests::emulators::moto_bucket;

#[tokio::test(flavor = "multi_thread")]
async fn s3_objects_without_a_stamp_are_read_whole_and_stamped_when_next_written() {
    let (endpoint, bucket) = moto_bucket();
    let raw = object_store::aws::AmazonS3Builder::new()
        .with_bucket_name(&bucket)
        .with_endpoint(&endpoint)
        .with_allow_http(true)
        .with_region("us-east-1")
        .with_access_key_id("testing")
        .with_secret_access_key("testing")
        .build()
        .unwrap();
    // A document as an earlier plugin wrote it: exactly its bytes, in the plugin's layout.
    let value = br#"{"installation":"wordpress","revision":1}"#.to_vec();
    assert!(value.len() > 32, "long enough to hold a stamp");
    let path = Path::parse("team/stowage/docs/._/legacy").unwrap();
    raw.put(&path, value.clone().into()).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let plugin = with_aws_env(dir.path());
    let storage = StorageHandle::for_plugin(
        stowage_tests::plugin_command(plugin, &[], Default::default()),
        s3_config(&endpoint, &bucket).to_string(),
        PluginOptions::default(),
    );
    let key = DocumentKey::new("docs", "", "legacy");

    let old = storage.get(&key).await.unwrap();
    assert_eq!(old.value.as_slice(), value.as_slice(), "read whole");

    // The same bytes again, at the old version: a new version, and the old one is stale.
    let new = storage
        .put(
            &key,
            value.clone(),
            Precondition::Version(old.version.clone()),
        )
        .await
        .unwrap();
    assert_ne!(new, old.version);
    let stale = storage
        .put(
            &key,
            value.clone(),
            Precondition::Version(old.version.clone()),
        )
        .await
        .unwrap_err();
    assert_eq!(stale.code(), ErrorCode::Conflict, "{stale}");

    // The object now carries a stamp; readers of the document do not see it.
    let body = raw.get(&path).await.unwrap().bytes().await.unwrap();
    assert_eq!(body.len(), 32 + value.len());
    assert!(body.starts_with(b"\0stowage-write "));
    assert_eq!(&body[32..], value.as_slice());
    let read = storage.get(&key).await.unwrap();
    assert_eq!(read.value.as_slice(), value.as_slice());
    assert_eq!(read.version, new);
    let listed = storage.list_all("docs", "", "").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].version, new);
    assert_eq!(
        listed[0].size,
        value.len() as u64,
        "the value's size, not the object's"
    );
    storage.shutdown().await;
}
