//! Broken-stream cases: what a plugin does with frames it cannot trust
//! (proto-docs/framing-and-codecs.md, "Frames"; handshake.md, exit codes). Each one must
//! end the connection promptly, without answering and with a non-zero exit, rather than
//! hang, allocate what the length claims, or guess.

use std::time::{Duration, Instant};

use stowage_host::PluginCommand;
use stowage_protocol::{EXIT_GRACE, MAX_FRAME_LEN};
use tokio::io::{AsyncReadExt as _, BufReader};
use tokio::process::{Child, ChildStdout};

use super::{PATIENCE, all_capabilities, describe_request, frame, raw, wait_exit, write_raw};
use crate::{Report, ensure};

pub(super) async fn cases(r: &mut Report, command: &PluginCommand) {
    let all = all_capabilities();

    r.case(
        "protocol.oversized_frame_ends_the_connection",
        &all,
        &[],
        || async {
            let (mut child, mut stdin, mut stdout, _) = raw(command).await?;
            // Only the length prefix, one byte over the limit; stdin stays open, so a plugin
            // waiting for (or allocating) those bytes hangs here instead of refusing them.
            let too_long = (MAX_FRAME_LEN + 1) as u32;
            write_raw(&mut stdin, &too_long.to_be_bytes()).await?;
            let result = refused(
                &mut child,
                &mut stdout,
                &format!("a length prefix of {too_long} bytes (the limit is {MAX_FRAME_LEN})"),
            )
            .await;
            drop(stdin);
            result
        },
    )
    .await;

    r.case(
        "protocol.trailing_bytes_end_the_connection",
        &all,
        &[],
        || async {
            let (mut child, mut stdin, mut stdout, h) = raw(command).await?;
            // A valid describe request with one byte after it, in the frame's length: a
            // payload is exactly one message, so this frame is broken, not a describe.
            let mut payload = h
                .codec
                .encode(&describe_request(1, PATIENCE))
                .map_err(|e| e.to_string())?;
            payload.push(0);
            write_raw(&mut stdin, &frame(&payload)).await?;
            let result = refused(
                &mut child,
                &mut stdout,
                &format!(
                    "a {} describe request followed by a trailing zero byte",
                    h.codec
                ),
            )
            .await;
            drop(stdin);
            result
        },
    )
    .await;

    r.case(
        "protocol.eof_inside_a_frame_exits_non_zero",
        &all,
        &[],
        || async {
            // Inside the length prefix.
            let (mut child, mut stdin, mut stdout, _) = raw(command).await?;
            write_raw(&mut stdin, &[0, 0]).await?;
            drop(stdin);
            refused(
                &mut child,
                &mut stdout,
                "2 of a length prefix's 4 bytes, then EOF",
            )
            .await?;
            // Inside the payload.
            let (mut child, mut stdin, mut stdout, h) = raw(command).await?;
            let payload = h
                .codec
                .encode(&describe_request(1, PATIENCE))
                .map_err(|e| e.to_string())?;
            let whole = frame(&payload);
            let cut = 4 + payload.len() / 2;
            write_raw(&mut stdin, &whole[..cut]).await?;
            drop(stdin);
            refused(
                &mut child,
                &mut stdout,
                &format!(
                    "{} of a frame's {} payload bytes, then EOF",
                    cut - 4,
                    payload.len()
                ),
            )
            .await
        },
    )
    .await;
}

/// Checks that after `what` the plugin closed stdout without answering and exited
/// non-zero, all within the exit grace period.
async fn refused(
    child: &mut Child,
    stdout: &mut BufReader<ChildStdout>,
    what: &str,
) -> Result<(), String> {
    let started = Instant::now();
    let mut out = Vec::new();
    let closed = tokio::time::timeout(EXIT_GRACE, stdout.read_to_end(&mut out)).await;
    let Ok(read) = closed else {
        let _ = child.start_kill();
        let answered = if out.is_empty() {
            String::new()
        } else {
            format!(", having answered it with {} bytes", out.len())
        };
        return Err(format!(
            "still connected {EXIT_GRACE:?} after {what}{answered}; it must log why and exit 1"
        ));
    };
    read.map_err(|e| e.to_string())?;
    ensure!(
        out.is_empty(),
        "answered {what} with {} bytes on stdout; it must not answer a broken frame",
        out.len()
    );
    let left = EXIT_GRACE
        .saturating_sub(started.elapsed())
        .max(Duration::from_millis(100));
    let status = wait_exit(child, left)
        .await
        .map_err(|e| format!("closed stdout after {what}, but is {e}"))?;
    ensure!(
        !status.success(),
        "exited with 0 after {what}; a broken stream ends with a non-zero exit (1)"
    );
    Ok(())
}
