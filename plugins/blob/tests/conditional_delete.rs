//! object_store has no conditional delete; the plugin adds the precondition header to the
//! DELETE request itself (re-signing it for Azure shared key). Check that the stores
//! enforce it: a DELETE with a stale ETag is refused and leaves the object, one with the
//! current ETag goes through. (Azure's hand-made conditional DELETE is tested in
//! src/store.rs against Azurite.)

#[path = "../src/http.rs"]
#[allow(dead_code)]
mod http_layer;

use http::header::{HeaderValue, IF_MATCH};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt as _};
use stowage_tests::emulators::moto_bucket;

async fn check(store: &dyn ObjectStore) {
    let path = Path::parse("cd/._/doc").unwrap();
    let put = store.put(&path, b"v1".to_vec().into()).await.unwrap();
    let etag = put.e_tag.expect("an ETag");
    let stale = HeaderValue::from_static("\"0123456789abcdef\"");
    let refused = http_layer::with_delete_condition(IF_MATCH, stale, store.delete(&path)).await;
    assert!(
        matches!(refused, Err(object_store::Error::Precondition { .. })),
        "a DELETE with a stale If-Match was not refused: {refused:?}"
    );
    assert!(
        store.head(&path).await.is_ok(),
        "the refused DELETE removed the object"
    );
    let current = HeaderValue::from_str(&etag).unwrap();
    http_layer::with_delete_condition(IF_MATCH, current, store.delete(&path))
        .await
        .unwrap();
    assert!(matches!(
        store.head(&path).await,
        Err(object_store::Error::NotFound { .. })
    ));
}

#[tokio::test]
async fn s3_deletes_honour_if_match() {
    let (endpoint, bucket) = moto_bucket();
    let store = object_store::aws::AmazonS3Builder::new()
        .with_bucket_name(&bucket)
        .with_endpoint(&endpoint)
        .with_allow_http(true)
        .with_region("us-east-1")
        .with_access_key_id("testing")
        .with_secret_access_key("testing")
        .with_http_connector(http_layer::Connector { azure: None })
        .with_disable_bulk_delete(true)
        .build()
        .unwrap();
    check(&store).await;
}
