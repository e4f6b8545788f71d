//! Remembers whether the protocol stream ended in an error rather than a clean EOF.
//!
//! tarpc's server stops on an undecodable or oversized frame just as it does on EOF; the
//! plugin must tell the two apart to exit non-zero and say why.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures::{Sink, Stream};

pub(crate) struct Tapped<T> {
    inner: Pin<Box<T>>,
    error: Arc<Mutex<Option<String>>>,
}

impl<T> Tapped<T> {
    pub(crate) fn new(inner: T) -> (Self, Arc<Mutex<Option<String>>>) {
        let error = Arc::new(Mutex::new(None));
        (
            Tapped {
                inner: Box::pin(inner),
                error: error.clone(),
            },
            error,
        )
    }
}

impl<T, I, E> Stream for Tapped<T>
where
    T: Stream<Item = Result<I, E>>,
    E: std::fmt::Display,
{
    type Item = Result<I, E>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.inner.as_mut().poll_next(cx);
        if let Poll::Ready(Some(Err(e))) = &polled {
            let mut slot = self.error.lock().unwrap_or_else(|p| p.into_inner());
            slot.get_or_insert_with(|| e.to_string());
        }
        polled
    }
}

impl<T, S> Sink<S> for Tapped<T>
where
    T: Sink<S>,
{
    type Error = T::Error;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.as_mut().poll_ready(cx)
    }

    fn start_send(mut self: Pin<&mut Self>, item: S) -> Result<(), Self::Error> {
        self.inner.as_mut().start_send(item)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.as_mut().poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.as_mut().poll_close(cx)
    }
}
