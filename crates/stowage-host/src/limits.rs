//! Bounded reads of input that Stowage does not control (stdin, user files, command
//! output): never more than the limit plus one byte is held, so `/dev/zero` or an endless
//! command fails fast instead of exhausting memory.

use std::io::{self, Read};

/// Reads everything from `reader` if it is at most `limit` bytes; otherwise fails with
/// [`io::ErrorKind::FileTooLarge`] after reading `limit + 1` bytes.
pub fn read_limited(reader: impl Read, limit: usize) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    reader.take(limit as u64 + 1).read_to_end(&mut buf)?;
    if buf.len() > limit {
        return Err(io::Error::new(
            io::ErrorKind::FileTooLarge,
            format!("more than the {limit}-byte limit"),
        ));
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_one_byte_past_the_limit() {
        assert_eq!(read_limited(&b"abc"[..], 3).unwrap(), b"abc");
        let e = read_limited(io::repeat(0), 1024).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::FileTooLarge);
    }
}
