//! What the CLI and the agent say to each other over the agent's unix socket.
//!
//! Every message is a 4-byte big-endian length and that many bytes of bincode, sent with
//! one `sendmsg`; a lease's answer carries the plugin's pipes as `SCM_RIGHTS` file
//! descriptors in the same call. The peers are the same `stowage` build (the hello names
//! the version, and a mismatch is refused), so this format is private, not part of the
//! plugin contract.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd, RawFd};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use stowage_protocol::PluginInfo;
use tokio::io::Interest;
use tokio::net::UnixStream;

/// The version both ends must share: the host crate's.
pub(crate) const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The largest message accepted (an environment is a few KiB; this is generous).
const MAX_MESSAGE: usize = 1 << 20;
/// The most descriptors one message carries (a lease: stdin, stdout, stderr relay).
const MAX_FDS: usize = 3;

/// From the CLI.
#[derive(Serialize, Deserialize)]
pub(crate) enum Request {
    /// A process for this plugin, warm if one is idle.
    Lease(Box<LeaseRequest>),
    /// The lease is over: `reusable` when the process answered every call and none is in
    /// flight; `configured` is what the CLI learned on a fresh process.
    Release {
        reusable: bool,
        configured: Option<Configured>,
    },
    /// What the agent runs.
    Status { version: String },
    /// Stop every plugin and exit.
    Stop { version: String },
}

/// Everything that decides which process may serve a lease. The environment and the
/// config digest are compared, never kept: the agent holds a digest of them.
#[derive(Serialize, Deserialize)]
pub(crate) struct LeaseRequest {
    /// The CLI's build: an agent of another build refuses, and the CLI runs the plugin.
    pub version: String,
    /// For messages.
    pub backend: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    /// The CLI's working directory, which the plugin inherits (relative paths in a
    /// plugin's config are relative to it).
    pub cwd: PathBuf,
    /// The whole environment the plugin gets (`STOWAGE_HOST_PID` aside), as bytes.
    pub env: Vec<(Vec<u8>, Vec<u8>)>,
    /// The pinned digest (`sha256`), which the agent verifies as the CLI would.
    pub sha256: Option<[u8; 32]>,
    /// A digest of the `configure` request (backend, role, config JSON).
    pub configure_digest: [u8; 32],
    /// How long an idle process is kept: the backend's `keep-alive`, else the agent's.
    pub keep_alive: Option<Duration>,
}

/// What a configured process told the CLI that first used it.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct Configured {
    /// The handshake line (`stowage-plugin 1 bincode`).
    pub handshake: String,
    pub info: PluginInfo,
}

/// From the agent.
#[derive(Serialize, Deserialize)]
pub(crate) enum Response {
    /// A process; its stdin, stdout and a stderr relay come as descriptors.
    Leased {
        pid: u32,
        /// Set when the process was configured by an earlier lease.
        warm: Option<Configured>,
    },
    /// Run the plugin yourself; `reason` is for the debug log.
    Unavailable {
        reason: String,
    },
    /// The plugin exited during the lease (its raw wait status), after its stderr was
    /// relayed to the end.
    Exited {
        wait_status: i32,
    },
    Released,
    Status(AgentStatus),
    /// The agent (this pid) is stopping.
    Stopping {
        pid: u32,
    },
}

/// What `stowage agent status` shows.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AgentStatus {
    pub pid: u32,
    pub version: String,
    pub uptime: Duration,
    pub idle_exit: Duration,
    pub plugins: Vec<PluginStatus>,
}

/// One plugin process the agent runs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PluginStatus {
    pub backend: String,
    pub program: PathBuf,
    pub pid: u32,
    pub leased: bool,
    pub leases: u64,
    /// How long it has been idle (zero while leased).
    pub idle_for: Duration,
    /// How long it will be kept while idle.
    pub keep_alive: Duration,
}

/// A SHA-256 over length-prefixed parts, so that two different sequences of parts never
/// hash alike: what identifies a configuration (CLI) and a process (agent).
pub(crate) fn digest_parts<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> [u8; 32] {
    use sha2::{Digest as _, Sha256};
    let mut h = Sha256::new();
    for part in parts {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    h.finalize().into()
}

/// Sends one message, with `fds` attached.
pub(crate) async fn send<T: Serialize>(
    stream: &UnixStream,
    message: &T,
    fds: &[RawFd],
) -> std::io::Result<()> {
    let mut body = bincode::serialize(message).map_err(std::io::Error::other)?;
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    zeroize::Zeroize::zeroize(&mut body);
    let frame = zeroize::Zeroizing::new(frame);
    let mut sent = 0;
    while sent < frame.len() {
        stream.writable().await?;
        let with_fds = sent == 0 && !fds.is_empty();
        let result = stream.try_io(Interest::WRITABLE, || {
            use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
            let iov = [IoSlice::new(&frame[sent..])];
            let rights = [ControlMessage::ScmRights(fds)];
            let cmsgs: &[ControlMessage] = if with_fds { &rights } else { &[] };
            sendmsg::<()>(
                stream.as_raw_fd(),
                &iov,
                cmsgs,
                MsgFlags::MSG_NOSIGNAL,
                None,
            )
            .map_err(std::io::Error::from)
        });
        match result {
            Ok(n) => sent += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Receives one message and the descriptors that came with it. `None` when the peer
/// closed the connection between messages.
pub(crate) async fn recv<T: for<'de> Deserialize<'de>>(
    stream: &UnixStream,
) -> std::io::Result<Option<(T, Vec<OwnedFd>)>> {
    let mut fds = Vec::new();
    let mut header = [0u8; 4];
    if !read_exact(stream, &mut header, &mut fds, true).await? {
        return Ok(None);
    }
    let len = u32::from_be_bytes(header) as usize;
    if len > MAX_MESSAGE {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("an agent message of {len} bytes (the most is {MAX_MESSAGE})"),
        ));
    }
    let mut body = vec![0u8; len];
    read_exact(stream, &mut body, &mut fds, false).await?;
    let message = bincode::deserialize(&body)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e));
    // A lease request carries a plugin's environment: no copy of it stays behind.
    zeroize::Zeroize::zeroize(&mut body);
    Ok(Some((message?, fds)))
}

/// Fills `buf`, collecting any descriptors received on the way. `false` when the peer
/// closed before the first byte and `eof_ok`.
async fn read_exact(
    stream: &UnixStream,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
    eof_ok: bool,
) -> std::io::Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        stream.readable().await?;
        let result = stream.try_io(Interest::READABLE, || {
            use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
            let mut space = nix::cmsg_space!([RawFd; MAX_FDS]);
            let mut iov = [IoSliceMut::new(&mut buf[filled..])];
            let msg = recvmsg::<()>(
                stream.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                MsgFlags::MSG_CMSG_CLOEXEC,
            )
            .map_err(std::io::Error::from)?;
            let mut received = Vec::new();
            if let Ok(cmsgs) = msg.cmsgs() {
                for cmsg in cmsgs {
                    if let ControlMessageOwned::ScmRights(raw) = cmsg {
                        // SAFETY: the kernel just installed these descriptors in this
                        // process for us; nothing else owns them.
                        received.extend(
                            raw.into_iter()
                                .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                        );
                    }
                }
            }
            Ok((msg.bytes, received))
        });
        match result {
            Ok((0, _)) => {
                if filled == 0 && eof_ok {
                    return Ok(false);
                }
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the agent connection closed in the middle of a message",
                ));
            }
            Ok((n, received)) => {
                filled += n;
                fds.extend(received);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn messages_and_descriptors_cross() {
        let (a, b) = UnixStream::pair().unwrap();
        let (r, w) = nix::unistd::pipe().unwrap();
        send(
            &a,
            &Response::Leased { pid: 7, warm: None },
            &[r.as_raw_fd(), w.as_raw_fd()],
        )
        .await
        .unwrap();
        send(&a, &Response::Released, &[]).await.unwrap();
        drop(a);
        let (first, fds): (Response, _) = recv(&b).await.unwrap().unwrap();
        assert!(matches!(first, Response::Leased { pid: 7, warm: None }));
        assert_eq!(fds.len(), 2);
        // The received write end feeds the original read end.
        nix::unistd::write(&fds[1], b"x").unwrap();
        let mut byte = [0u8; 1];
        nix::unistd::read(&r, &mut byte).unwrap();
        assert_eq!(&byte, b"x");
        let (second, fds): (Response, _) = recv(&b).await.unwrap().unwrap();
        assert!(matches!(second, Response::Released));
        assert!(fds.is_empty());
        assert!(recv::<Response>(&b).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn an_oversized_length_is_refused() {
        let (a, b) = UnixStream::pair().unwrap();
        let frame = ((MAX_MESSAGE as u32) + 1).to_be_bytes();
        a.try_write(&frame).unwrap();
        let err = recv::<Response>(&b).await.err().unwrap();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    }
}
