//! The conditional Azure delete, signed and sent by hand: object_store deletes Azure blobs
//! through batch requests, which have no room for a precondition.

use std::sync::Arc;

use http::StatusCode;
use http::header::{IF_MATCH, RETRY_AFTER};
use object_store::azure::{AzureAuthorizer, MicrosoftAzure};
use object_store::client::{HttpClient, HttpErrorKind, HttpRequestBody};
use object_store::path::Path;
use stowage_plugin::PluginError;

use super::{OpResult, quoted};
use crate::errors::{self, Context};
use crate::http::{Failure, body_code};

/// What a conditional delete needs besides the store client: the HTTP client object_store
/// signs requests for, and where the container lives.
pub(super) struct AzureDelete {
    pub(super) azure: Arc<MicrosoftAzure>,
    pub(super) http: HttpClient,
    /// The account URL (`https://ACCOUNT.blob.core.windows.net`, or the configured endpoint).
    pub(super) service: url::Url,
    pub(super) container: String,
    pub(super) account: String,
}

impl std::fmt::Debug for AzureDelete {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureDelete")
            .field("container", &self.container)
            .finish_non_exhaustive()
    }
}

impl AzureDelete {
    /// Deletes the blob at `path` only if its ETag is still `version`.
    pub(super) async fn delete_if_match(
        &self,
        path: &Path,
        version: &str,
        what: &str,
        store: &str,
    ) -> OpResult<()> {
        let mut url = self.service.clone();
        url.path_segments_mut()
            .map_err(|_| PluginError::invalid_argument("the Azure endpoint cannot be a base URL"))?
            .pop_if_empty()
            .push(&self.container)
            .extend(path.parts().map(|p| p.as_ref().to_owned()));
        let mut request = http::Request::builder()
            .method(http::Method::DELETE)
            .uri(url.as_str())
            .header(IF_MATCH, quoted(version))
            .body(HttpRequestBody::empty())
            .map_err(|e| PluginError::internal(format!("cannot build the delete request: {e}")))?;
        let credential = self.azure.credentials().get_credential().await?;
        AzureAuthorizer::new(&credential, &self.account).try_authorize(&mut request)?;
        let response = self.http.execute(request).await.map_err(|e| {
            PluginError::unavailable(format!(
                "cannot reach the {store} to delete {what}: {}",
                match e.kind() {
                    HttpErrorKind::Timeout => "timed out",
                    HttpErrorKind::Connect => "cannot connect",
                    _ => "the request failed",
                }
            ))
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(stowage_plugin::http::retry_after);
        let body = response.into_body().bytes().await.unwrap_or_default();
        let code = std::str::from_utf8(&body)
            .ok()
            .and_then(body_code)
            .map(str::to_owned);
        let cx = Context {
            op: "delete",
            what,
            store,
            verbatim: false,
            failure: Failure {
                status: Some(status),
                code,
                retry_after,
            },
        };
        Err(match status {
            StatusCode::PRECONDITION_FAILED => PluginError::conflict(format!(
                "document {what} changed or was deleted by someone else; it is not at version {version}"
            )),
            StatusCode::NOT_FOUND if !errors::missing_bucket(&cx.failure.code) => {
                PluginError::conflict(format!(
                    "document {what} was deleted by someone else; it is not at version {version}"
                ))
            }
            _ => errors::from_answer(status, &cx),
        }
        .into())
    }
}

#[cfg(test)]
mod tests {
    use object_store::ObjectStoreExt as _;
    use stowage_tests::emulators;

    use super::super::build::Kind;
    use super::super::{BlobStorage, OpError};
    use crate::config::{BlobConfig, Checked};

    #[tokio::test]
    async fn azure_conditional_delete_is_enforced_by_the_store() {
        let (endpoint, container) = emulators::azurite_container();
        let config = BlobConfig {
            url: format!("az://{container}/unit"),
            endpoint: Some(endpoint),
            use_emulator: Some(true),
            ..BlobConfig::default()
        };
        let storage = BlobStorage::new(Checked::check(config, "unit").unwrap());
        let built = storage.built().await.unwrap();
        let Kind::Azure { delete, .. } = &built.kind else {
            panic!("not an Azure store")
        };
        let path = storage.layout.document("c", "", "doc");
        let put = built.store.put(&path, b"v1".to_vec().into()).await.unwrap();
        let version = built.version_of(put.e_tag.as_deref()).unwrap();
        let stale = delete
            .delete_if_match(&path, "0x8D0000000000000", "doc", "store")
            .await;
        match stale {
            Err(OpError::Plugin(e)) => assert_eq!(e.code, stowage_plugin::ErrorCode::Conflict),
            _ => panic!("a stale conditional delete was not refused"),
        }
        assert!(
            built.store.head(&path).await.is_ok(),
            "the refused delete removed the blob"
        );
        assert!(
            delete
                .delete_if_match(&path, &version, "doc", "store")
                .await
                .is_ok()
        );
        assert!(matches!(
            built.store.head(&path).await,
            Err(object_store::Error::NotFound { .. })
        ));
    }
}
