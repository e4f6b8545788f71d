//! The host's end of the protocol stream, checked.
//!
//! tarpc's client ignores a response whose request id it does not know, so a plugin that
//! answers with the wrong id would make the caller wait for its deadline and then report
//! a hang. This wrapper remembers the ids the host sent and turns an answer to any other
//! id into a stream error, and it remembers the first error the stream ended with (an
//! oversized or undecodable frame) so that the host can say why a plugin's answer was
//! refused even when the plugin exits right after.

use std::collections::BTreeSet;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures::{Sink, Stream};
use stowage_protocol::service::{StowagePluginRequest as Req, StowagePluginResponse as Resp};
use tarpc::{ClientMessage, Response};

/// The first error the stream ended with, shared with the process that owns it.
pub(crate) type StreamError = Arc<Mutex<Option<String>>>;

pub(crate) struct CheckedTransport<T> {
    inner: Pin<Box<T>>,
    /// Requests sent and not yet answered (cancelled ones stay: an answer may cross).
    outstanding: BTreeSet<u64>,
    error: StreamError,
}

impl<T> CheckedTransport<T> {
    pub(crate) fn new(inner: T) -> (Self, StreamError) {
        let error = StreamError::default();
        (
            CheckedTransport {
                inner: Box::pin(inner),
                outstanding: BTreeSet::new(),
                error: error.clone(),
            },
            error,
        )
    }

    fn remember(&self, e: &io::Error) {
        let mut slot = self.error.lock().unwrap_or_else(|p| p.into_inner());
        slot.get_or_insert_with(|| e.to_string());
    }
}

impl<T> Stream for CheckedTransport<T>
where
    T: Stream<Item = io::Result<Response<Resp>>>,
{
    type Item = io::Result<Response<Resp>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.inner.as_mut().poll_next(cx);
        match polled {
            Poll::Ready(Some(Ok(response))) => {
                if self.outstanding.remove(&response.request_id) {
                    return Poll::Ready(Some(Ok(response)));
                }
                let e = io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "it answered request id {}, which the host never sent or which was \
                         answered already",
                        response.request_id
                    ),
                );
                self.remember(&e);
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(Some(Err(e))) => {
                self.remember(&e);
                Poll::Ready(Some(Err(e)))
            }
            other => other,
        }
    }
}

impl<T> Sink<ClientMessage<Req>> for CheckedTransport<T>
where
    T: Sink<ClientMessage<Req>, Error = io::Error>,
{
    type Error = io::Error;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.inner.as_mut().poll_ready(cx)
    }

    fn start_send(mut self: Pin<&mut Self>, item: ClientMessage<Req>) -> io::Result<()> {
        if let ClientMessage::Request(request) = &item {
            self.outstanding.insert(request.id);
        }
        self.inner.as_mut().start_send(item)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.inner.as_mut().poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.inner.as_mut().poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::{SinkExt as _, StreamExt as _};
    use stowage_protocol::PluginInfo;

    fn info() -> Resp {
        Resp::Describe(Ok(PluginInfo {
            name: "t".into(),
            version: "0".into(),
            protocol_version: 1,
            capabilities: Vec::new(),
        }))
    }

    #[tokio::test]
    async fn answers_to_unknown_ids_are_stream_errors() {
        let (host_io, plugin_io) = tokio::io::duplex(4096);
        let (mut host, error) =
            CheckedTransport::new(stowage_protocol::codec::transport::<
                _,
                Response<Resp>,
                ClientMessage<Req>,
            >(host_io, stowage_protocol::Codec::Json));
        let mut plugin: stowage_protocol::codec::PluginTransport<_> =
            stowage_protocol::codec::transport(plugin_io, stowage_protocol::Codec::Json);

        host.send(ClientMessage::Request(tarpc::Request {
            context: tarpc::context::current(),
            id: 3,
            message: Req::Describe {},
        }))
        .await
        .unwrap();
        let _ = plugin.next().await.unwrap().unwrap();
        plugin
            .send(Response {
                request_id: 3,
                message: Ok(info()),
            })
            .await
            .unwrap();
        assert_eq!(host.next().await.unwrap().unwrap().request_id, 3);
        // Answered already: a second answer to 3 is a protocol error, as is any other id.
        plugin
            .send(Response {
                request_id: 3,
                message: Ok(info()),
            })
            .await
            .unwrap();
        let e = host.next().await.unwrap().unwrap_err();
        assert!(e.to_string().contains("request id 3"), "{e}");
        assert!(error.lock().unwrap().as_deref().unwrap().contains("id 3"));
    }
}
