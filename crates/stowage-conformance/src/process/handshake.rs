//! Handshake cases: the cookie and version negotiation (proto-docs/handshake.md).

use std::time::Duration;

use stowage_host::PluginCommand;
use stowage_protocol::EXIT_GRACE;
use stowage_protocol::handshake::Handshake;
use tokio::io::{AsyncReadExt as _, BufReader};

use super::{all_capabilities, read_line, spawn, wait_exit};
use crate::{Report, ensure};

pub(super) async fn cases(r: &mut Report, command: &PluginCommand) {
    let all = all_capabilities();

    r.case(
        "handshake.without_cookie_exits_promptly",
        &all,
        &[],
        || async {
            let mut child = spawn(command, false, "1")?;
            // Keep stdin open: a plugin that waits on it would hang here.
            let _stdin = child.stdin.take();
            let status = wait_exit(&mut child, Duration::from_secs(5)).await?;
            let mut out = Vec::new();
            child
                .stdout
                .take()
                .unwrap()
                .read_to_end(&mut out)
                .await
                .map_err(|e| e.to_string())?;
            let mut err = Vec::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_end(&mut err)
                .await
                .map_err(|e| e.to_string())?;
            ensure!(
                !status.success(),
                "exited successfully; run by hand it should fail"
            );
            ensure!(
                out.is_empty(),
                "wrote {} bytes to stdout without a host",
                out.len()
            );
            ensure!(
                !err.is_empty(),
                "said nothing on stderr to the person who ran it"
            );
            Ok(())
        },
    )
    .await;

    r.case("handshake.picks_an_offered_version", &all, &[], || async {
        let mut child = spawn(command, true, "1,999")?;
        let stdin = child.stdin.take();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let line = read_line(&mut stdout).await?;
        let h = Handshake::parse(&line).map_err(|e| format!("handshake {line:?}: {e}"))?;
        ensure!(
            line.ends_with('\n'),
            "handshake line {line:?} has no newline"
        );
        ensure!(
            h.version == 1,
            "offered 1 and 999 (unknown), it chose {}",
            h.version
        );
        drop(stdin);
        wait_exit(&mut child, EXIT_GRACE).await?;
        Ok(())
    })
    .await;

    r.case(
        "handshake.no_common_version_fails_cleanly",
        &all,
        &[],
        || async {
            let mut child = spawn(command, true, "999")?;
            let _stdin = child.stdin.take();
            let mut out = Vec::new();
            let mut stdout = child.stdout.take().unwrap();
            let status = wait_exit(&mut child, Duration::from_secs(5)).await?;
            stdout
                .read_to_end(&mut out)
                .await
                .map_err(|e| e.to_string())?;
            let text = String::from_utf8_lossy(&out);
            if let Ok(h) = Handshake::parse(text.lines().next().unwrap_or("")) {
                return Err(format!(
                    "offered only 999, it answered version {}",
                    h.version
                ));
            }
            ensure!(
                !status.success(),
                "exited successfully with no common version"
            );
            Ok(())
        },
    )
    .await;
}
