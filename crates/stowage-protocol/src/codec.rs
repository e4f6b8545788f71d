//! Framing and codecs.
//!
//! Every frame is a 4-byte big-endian length followed by that many payload bytes. Both
//! sides refuse a frame longer than [`MAX_FRAME_LEN`] before allocating it. The payload is
//! one tarpc envelope (`ClientMessage` host→plugin, `Response` plugin→host) encoded with
//! the codec the plugin named in its handshake:
//!
//! - `bincode`: bincode 1 with fixed-width little-endian integers (`u32` 4 bytes, `u64`
//!   8 bytes), `u64` lengths for strings, byte strings and sequences, a `u8` tag for
//!   options, a `u32` variant index for enums, and no trailing bytes.
//! - `json`: one UTF-8 JSON document per frame, enums externally tagged, byte values as
//!   base64 strings.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::str::FromStr;

use bincode::Options as _;
use bytes::{Bytes as FrameBytes, BytesMut};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{Framed, LengthDelimitedCodec};

/// The largest frame payload either side accepts: 16 MiB.
pub const MAX_FRAME_LEN: usize = 16 * 1024 * 1024;

/// The largest document or secret value: 8 MiB, so that a value still fits in one frame
/// after JSON's base64 expansion and the envelope around it.
pub const MAX_VALUE_LEN: usize = 8 * 1024 * 1024;

/// The encoding of frame payloads, chosen by the plugin in its handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Codec {
    /// Compact binary (bincode 1, fixed-width integers). The Rust SDK's default.
    #[default]
    Bincode,
    /// JSON documents, one per frame. The easiest to implement in other languages.
    Json,
}

impl Codec {
    /// The handshake name.
    pub fn as_str(self) -> &'static str {
        match self {
            Codec::Bincode => "bincode",
            Codec::Json => "json",
        }
    }

    /// Encodes one value as a frame payload.
    pub fn encode<T: Serialize + ?Sized>(self, item: &T) -> io::Result<Vec<u8>> {
        match self {
            Codec::Bincode => bincode_options().serialize(item).map_err(invalid_data),
            Codec::Json => serde_json::to_vec(item).map_err(invalid_data),
        }
    }

    /// Decodes one frame payload.
    ///
    /// A `Deserialize` impl that panics on a value it cannot represent is an error here,
    /// not a crash: tarpc turns a request's deadline (sent as the time left) into an
    /// `Instant` by addition, which panics when the time left is absurdly large (found by
    /// the codec fuzz targets). Frames are untrusted input on both sides.
    pub fn decode<T: for<'de> Deserialize<'de>>(self, payload: &[u8]) -> io::Result<T> {
        let decode = || match self {
            Codec::Bincode => bincode_options().deserialize(payload).map_err(invalid_data),
            Codec::Json => serde_json::from_slice(payload).map_err(invalid_data),
        };
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(decode)).unwrap_or_else(|_| {
            Err(invalid_data(
                "a value out of range (a deadline too far in the future?)",
            ))
        })
    }
}

fn bincode_options() -> impl bincode::Options {
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .with_little_endian()
        .reject_trailing_bytes()
        .with_limit(MAX_FRAME_LEN as u64)
}

fn invalid_data(e: impl fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("undecodable frame: {e}"),
    )
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Codec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "bincode" => Ok(Codec::Bincode),
            "json" => Ok(Codec::Json),
            other => Err(format!(
                "unknown codec {other:?} (expected bincode or json)"
            )),
        }
    }
}

impl<T: Serialize> tokio_serde::Serializer<T> for Codec {
    type Error = io::Error;

    fn serialize(self: Pin<&mut Self>, item: &T) -> io::Result<FrameBytes> {
        self.encode(item).map(FrameBytes::from)
    }
}

impl<T: for<'de> Deserialize<'de>> tokio_serde::Deserializer<T> for Codec {
    type Error = io::Error;

    fn deserialize(self: Pin<&mut Self>, src: &BytesMut) -> io::Result<T> {
        self.decode(src)
    }
}

/// The length-prefix framing of the contract (4-byte big-endian length, 16 MiB at most).
pub fn length_codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_length(4)
        .big_endian()
        .max_frame_length(MAX_FRAME_LEN)
        .new_codec()
}

/// A tarpc transport over any byte stream (a plugin's stdin/stdout, a socket, a duplex
/// pipe in tests) with the contract's framing and the given codec.
pub type Transport<Io, Item, SinkItem> =
    tarpc::serde_transport::Transport<Io, Item, SinkItem, Codec>;

/// Wraps a byte stream into a tarpc transport.
pub fn transport<Io, Item, SinkItem>(io: Io, codec: Codec) -> Transport<Io, Item, SinkItem>
where
    Io: AsyncRead + AsyncWrite,
    Item: for<'de> Deserialize<'de>,
    SinkItem: Serialize,
{
    tarpc::serde_transport::new(Framed::new(io, length_codec()), codec)
}

/// The transport a host uses to talk to a plugin.
pub type HostTransport<Io> = Transport<
    Io,
    tarpc::Response<crate::service::StowagePluginResponse>,
    tarpc::ClientMessage<crate::service::StowagePluginRequest>,
>;

/// The transport a plugin uses to talk to its host.
pub type PluginTransport<Io> = Transport<
    Io,
    tarpc::ClientMessage<crate::service::StowagePluginRequest>,
    tarpc::Response<crate::service::StowagePluginResponse>,
>;

#[cfg(test)]
mod tests {
    use super::*;
    use futures::{SinkExt, StreamExt};
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn oversized_frames_are_refused_before_allocation() {
        let (mut a, b) = tokio::io::duplex(64);
        let mut t: Transport<_, String, String> = transport(b, Codec::Json);
        // A length prefix claiming 4 GiB: the reader must fail, not allocate.
        a.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
        let err = t.next().await.unwrap().unwrap_err();
        assert!(err.to_string().contains("frame"), "{err}");
        drop(t.send("x".into()).await);
    }

    /// Found by the `frame_decoder` fuzz target: tokio-util's length codec consumes a
    /// frame's header before its payload arrives, so a header alone at EOF ends the stream
    /// like a clean close, while a header with part of its payload is an error. The host
    /// does not rely on either: a plugin that closes its stdout mid-call is reported as
    /// exited or broken (fault matrix `a_truncated_frame`, `a_frame_header_without_payload`).
    #[tokio::test]
    async fn a_frame_header_alone_at_eof_ends_the_stream_quietly() {
        for (tail, errs) in [(&[][..], false), (&[1u8, 2, 3][..], true)] {
            let (mut a, b) = tokio::io::duplex(64);
            let mut t: Transport<_, String, String> = transport(b, Codec::Json);
            a.write_all(&64u32.to_be_bytes()).await.unwrap();
            a.write_all(tail).await.unwrap();
            drop(a);
            match t.next().await {
                None => assert!(!errs, "a partial payload must be an error"),
                Some(Err(e)) => assert!(errs, "a header alone: {e}"),
                Some(Ok(item)) => panic!("a frame out of nothing: {item:?}"),
            }
        }
    }

    /// Found by the `codec_bincode` fuzz target: a request whose deadline is u64::MAX
    /// seconds away made tarpc panic ("overflow when adding duration to instant") inside
    /// decoding, taking the plugin's transport down. Now it is an undecodable frame.
    #[test]
    fn an_absurd_deadline_is_an_undecodable_frame_not_a_panic() {
        use crate::service::StowagePluginRequest;
        use tarpc::ClientMessage;
        let bincode = [
            0, 0, 0, 0, 0, 0xf9, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 1, 0, 0xff, 0xff, 0xff,
            0xff, 0xff, 0xff, 0xf6, 0x32,
        ];
        let json = br#"{"Request":{"context":{"deadline":{"secs":18446744073709551615,"nanos":0},"trace_context":{"trace_id":[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0],"span_id":0,"sampling_decision":"Unsampled"}},"id":12,"message":{"Describe":{}}}}"#;
        for (codec, payload) in [(Codec::Bincode, &bincode[..]), (Codec::Json, &json[..])] {
            let err = codec
                .decode::<ClientMessage<StowagePluginRequest>>(payload)
                .map(|_| ())
                .unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{codec}: {err}");
            assert!(err.to_string().contains("out of range"), "{codec}: {err}");
        }
    }

    #[test]
    fn bincode_integers_are_fixed_width_little_endian() {
        assert_eq!(Codec::Bincode.encode(&1u32).unwrap(), [1, 0, 0, 0]);
        assert_eq!(
            Codec::Bincode.encode("ab").unwrap(),
            [2, 0, 0, 0, 0, 0, 0, 0, b'a', b'b']
        );
        assert!(Codec::Bincode.decode::<u32>(&[1, 0, 0, 0, 9]).is_err());
    }
}
