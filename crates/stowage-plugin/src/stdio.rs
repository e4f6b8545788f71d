//! Moves the protocol off the process's standard streams.
//!
//! The frames must be the only bytes on the pipe to the host. Any library that prints to
//! stdout (or reads stdin) would corrupt the stream, so before serving we duplicate the
//! real stdin/stdout to private descriptors, point fd 1 at stderr and fd 0 at /dev/null.

use std::fs::File;
use std::io::{self, Write as _};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use tokio::io::{AsyncRead, AsyncWrite};

pub(crate) struct ProtocolStdio {
    input: OwnedFd,
    output: OwnedFd,
}

fn dup_cloexec(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC returns a new descriptor we then own exclusively.
    let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    if new < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `new` is a fresh, valid descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

fn redirect(from: RawFd, onto: RawFd) -> io::Result<()> {
    // SAFETY: dup2 on two valid descriptors; `onto` is a standard stream we deliberately replace.
    if unsafe { libc::dup2(from, onto) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl ProtocolStdio {
    /// Takes stdin/stdout for the protocol and neutralises fds 0 and 1.
    pub(crate) fn take() -> io::Result<Self> {
        io::stdout().flush()?;
        let input = dup_cloexec(libc::STDIN_FILENO)?;
        let output = dup_cloexec(libc::STDOUT_FILENO)?;
        redirect(libc::STDERR_FILENO, libc::STDOUT_FILENO)?;
        let null = File::open("/dev/null")?;
        redirect(null.as_raw_fd(), libc::STDIN_FILENO)?;
        Ok(ProtocolStdio { input, output })
    }

    /// The protocol stream as one async duplex value. Must run inside a tokio runtime.
    pub(crate) fn into_async(
        self,
    ) -> io::Result<
        tokio::io::Join<Box<dyn AsyncRead + Unpin + Send>, Box<dyn AsyncWrite + Unpin + Send>>,
    > {
        use tokio::net::unix::pipe;
        // Pipes (what a host gives us) get tokio's non-blocking pipe driver; anything else
        // (a file, a socket) falls back to tokio's blocking-pool file wrapper.
        let reader: Box<dyn AsyncRead + Unpin + Send> = if is_fifo(&self.input) {
            Box::new(pipe::Receiver::from_owned_fd(self.input)?)
        } else {
            Box::new(tokio::fs::File::from_std(File::from(self.input)))
        };
        let writer: Box<dyn AsyncWrite + Unpin + Send> = if is_fifo(&self.output) {
            Box::new(pipe::Sender::from_owned_fd(self.output)?)
        } else {
            Box::new(tokio::fs::File::from_std(File::from(self.output)))
        };
        Ok(tokio::io::join(reader, writer))
    }
}

fn is_fifo(fd: &OwnedFd) -> bool {
    use std::os::unix::fs::FileTypeExt as _;
    let file = std::mem::ManuallyDrop::new(
        // SAFETY: borrowed view of a valid descriptor; ManuallyDrop keeps it open.
        unsafe { File::from_raw_fd(fd.as_raw_fd()) },
    );
    file.metadata()
        .map(|m| m.file_type().is_fifo())
        .unwrap_or(false)
}
