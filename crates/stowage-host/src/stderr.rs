//! Plugin stderr: forwarded line by line into `tracing`, and its tail kept for errors.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncBufReadExt as _, AsyncRead, BufReader};
use tokio::sync::watch;

/// How many of the last stderr lines are attached to errors.
pub const TAIL_LINES: usize = 20;
/// Longer lines are cut to this many characters.
const MAX_LINE_CHARS: usize = 2000;
/// At most this many bytes of one line are held in memory; the rest of the line is read
/// and dropped, so a plugin writing without newlines cannot grow the host's memory.
const MAX_LINE_BYTES: usize = 4 * MAX_LINE_CHARS;

/// The stderr of one plugin process.
#[derive(Clone)]
pub struct StderrLog {
    tail: Arc<Mutex<VecDeque<String>>>,
    closed: watch::Receiver<bool>,
}

impl StderrLog {
    /// Starts forwarding `stderr` of the plugin serving `backend`, with every occurrence of
    /// a `scrub` value replaced by `<redacted>` before the line is logged or kept.
    pub fn forward(
        backend: String,
        stderr: impl AsyncRead + Unpin + Send + 'static,
        scrub: Vec<String>,
    ) -> Self {
        let tail = Arc::new(Mutex::new(VecDeque::with_capacity(TAIL_LINES)));
        let (closed_tx, closed) = watch::channel(false);
        let sink = tail.clone();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stderr);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match read_capped_line(&mut reader, &mut buf).await {
                    Ok(None) | Err(_) => break,
                    Ok(Some(cut)) => {
                        let line = String::from_utf8_lossy(&buf);
                        let line = line.trim_end_matches(['\n', '\r']);
                        let mut line = scrubbed(line, &scrub);
                        if line.chars().count() > MAX_LINE_CHARS {
                            line = line.chars().take(MAX_LINE_CHARS).collect();
                        }
                        if cut {
                            line.push_str(" …(line cut)");
                        }
                        let shown = emit(&backend, &line);
                        let mut t = sink.lock().unwrap_or_else(|e| e.into_inner());
                        if t.len() == TAIL_LINES {
                            t.pop_front();
                        }
                        t.push_back(shown);
                    }
                }
            }
            let _ = closed_tx.send(true);
        });
        StderrLog { tail, closed }
    }

    /// The last lines seen so far.
    pub fn tail(&self) -> Vec<String> {
        self.tail
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    /// The last lines, after waiting (briefly) for the plugin to close stderr, so that the
    /// lines it wrote just before dying are included.
    pub async fn tail_at_exit(&self, wait: Duration) -> Vec<String> {
        let mut closed = self.closed.clone();
        let _ = tokio::time::timeout(wait, closed.wait_for(|c| *c)).await;
        self.tail()
    }
}

/// `line` with every `scrub` value replaced by `<redacted>`.
fn scrubbed(line: &str, scrub: &[String]) -> String {
    let mut line = line.to_owned();
    for value in scrub {
        if line.contains(value.as_str()) {
            line = line.replace(value.as_str(), "<redacted>");
        }
    }
    line
}

/// Reads one line into `buf`, keeping at most [`MAX_LINE_BYTES`] of it. `None` at EOF;
/// `Some(true)` when the line was longer and its rest was dropped.
async fn read_capped_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<bool>> {
    let mut cut = false;
    let mut read_any = false;
    loop {
        let chunk = reader.fill_buf().await?;
        if chunk.is_empty() {
            return Ok(read_any.then_some(cut));
        }
        read_any = true;
        let (take, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        let room = MAX_LINE_BYTES.saturating_sub(buf.len());
        if take > room {
            cut = true;
        }
        buf.extend_from_slice(&chunk[..take.min(room)]);
        reader.consume(take);
        if done {
            return Ok(Some(cut));
        }
    }
}

/// Logs one stderr line as a tracing event and returns its human form for the tail.
///
/// JSON lines with a `level` and a message (`message`, `msg` or `fields.message`) become
/// events at that level; anything else is logged at INFO as written.
fn emit(backend: &str, line: &str) -> String {
    let parsed = line
        .starts_with('{')
        .then(|| serde_json::from_str::<serde_json::Value>(line).ok())
        .flatten();
    let Some(json) = parsed else {
        tracing::info!(target: "stowage::plugin", backend, "{line}");
        return line.to_owned();
    };
    let level = json
        .get("level")
        .and_then(|l| l.as_str())
        .unwrap_or("info")
        .to_ascii_lowercase();
    let message = json
        .get("message")
        .or_else(|| json.get("msg"))
        .or_else(|| json.pointer("/fields/message"))
        .and_then(|m| m.as_str())
        .unwrap_or(line);
    // Remaining structured fields, shown compactly after the message.
    let mut extra = Vec::new();
    let fields = json.get("fields").and_then(|f| f.as_object());
    let top = json.as_object();
    for map in [fields, top].into_iter().flatten() {
        for (k, v) in map {
            if matches!(
                k.as_str(),
                "level" | "message" | "msg" | "fields" | "timestamp" | "time" | "target"
            ) {
                continue;
            }
            extra.push(format!(
                "{k}={}",
                v.as_str().map_or_else(|| v.to_string(), str::to_owned)
            ));
        }
    }
    let text = if extra.is_empty() {
        message.to_owned()
    } else {
        format!("{message} {}", extra.join(" "))
    };
    match level.as_str() {
        "error" | "fatal" | "critical" => {
            tracing::error!(target: "stowage::plugin", backend, "{text}")
        }
        "warn" | "warning" => tracing::warn!(target: "stowage::plugin", backend, "{text}"),
        "debug" => tracing::debug!(target: "stowage::plugin", backend, "{text}"),
        "trace" => tracing::trace!(target: "stowage::plugin", backend, "{text}"),
        _ => tracing::info!(target: "stowage::plugin", backend, "{text}"),
    }
    format!("{} {text}", level.to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::{MAX_LINE_BYTES, emit, read_capped_line};

    #[tokio::test]
    async fn a_line_without_end_is_held_only_up_to_the_cap() {
        // 10 MB without a newline, then a short line: memory stays at the cap, and the
        // next line is read intact.
        let mut input = vec![b'x'; 10_000_000];
        input.extend_from_slice(b"\nnext\n");
        let mut reader = tokio::io::BufReader::new(&input[..]);
        let mut buf = Vec::new();
        assert_eq!(
            read_capped_line(&mut reader, &mut buf).await.unwrap(),
            Some(true)
        );
        assert_eq!(buf.len(), MAX_LINE_BYTES);
        assert!(
            buf.capacity() < 2 * MAX_LINE_BYTES + 8192,
            "{}",
            buf.capacity()
        );
        buf.clear();
        assert_eq!(
            read_capped_line(&mut reader, &mut buf).await.unwrap(),
            Some(false)
        );
        assert_eq!(buf, b"next\n");
        buf.clear();
        assert_eq!(read_capped_line(&mut reader, &mut buf).await.unwrap(), None);
    }

    #[test]
    fn json_lines_keep_their_level_message_and_fields() {
        assert_eq!(
            emit(
                "b",
                r#"{"level":"WARN","fields":{"message":"slow disk","ms":120}}"#
            ),
            "WARN slow disk ms=120"
        );
        assert_eq!(
            emit("b", r#"{"level":"error","message":"boom","op":"get"}"#),
            "ERROR boom op=get"
        );
        assert_eq!(
            emit("b", r#"{"level":"debug","msg":"hello"}"#),
            "DEBUG hello"
        );
        assert_eq!(emit("b", "plain text line"), "plain text line");
        // Not JSON after all: kept as written.
        assert_eq!(emit("b", "{not json"), "{not json");
    }
}
