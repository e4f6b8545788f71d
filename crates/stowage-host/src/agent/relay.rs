//! A plugin's stderr while the agent keeps it: relayed to the CLI holding its lease
//! (through a pipe the CLI reads like any plugin's stderr), held while it is idle and
//! handed to the next lease, so that the CLI logs every line exactly as without the agent
//! (its own scrubbing of credentials included).

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::unix::pipe;
use tokio::sync::{mpsc, oneshot, watch};

/// At most this much stderr is held while no lease is open; older bytes are dropped.
const HELD_MAX: usize = 64 * 1024;
/// A CLI that stops reading its relay loses it rather than stall the agent.
const WRITE_TIMEOUT: Duration = Duration::from_secs(1);

pub(crate) enum RelayCommand {
    /// Relay to this pipe from now on (after what was held).
    Attach(pipe::Sender),
    /// Relay what the plugin has written so far, then close the pipe.
    Detach(oneshot::Sender<()>),
}

/// Runs until the plugin closes stderr and the commands stop; `closed` turns true once
/// everything the plugin wrote has been relayed (or held) and the relay closed.
pub(crate) async fn run(
    mut stderr: pipe::Receiver,
    mut commands: mpsc::UnboundedReceiver<RelayCommand>,
    closed: watch::Sender<bool>,
) {
    let mut held: Vec<u8> = Vec::new();
    let mut relay: Option<pipe::Sender> = None;
    let mut buf = vec![0u8; 8192];
    let mut eof = false;
    loop {
        tokio::select! {
            biased;
            command = commands.recv() => match command {
                None => return,
                Some(RelayCommand::Attach(mut to)) => {
                    if !held.is_empty() && write(&mut to, &held).await {
                        held.clear();
                    }
                    // A dead plugin's relay ends at once: its stderr is complete.
                    relay = if eof { None } else { Some(to) };
                }
                Some(RelayCommand::Detach(ack)) => {
                    // Whatever the plugin wrote before answering is in the pipe by now.
                    while !eof {
                        match stderr.try_read(&mut buf) {
                            Ok(0) => {
                                eof = true;
                                let _ = closed.send(true);
                            }
                            Ok(n) => pass(&mut relay, &mut held, &buf[..n]).await,
                            Err(_) => break,
                        }
                    }
                    relay = None;
                    let _ = ack.send(());
                }
            },
            read = stderr.read(&mut buf), if !eof => match read {
                Ok(0) | Err(_) => {
                    eof = true;
                    relay = None;
                    let _ = closed.send(true);
                }
                Ok(n) => pass(&mut relay, &mut held, &buf[..n]).await,
            },
        }
    }
}

async fn pass(relay: &mut Option<pipe::Sender>, held: &mut Vec<u8>, bytes: &[u8]) {
    if let Some(to) = relay {
        if write(to, bytes).await {
            return;
        }
        *relay = None;
    }
    held.extend_from_slice(bytes);
    if held.len() > HELD_MAX {
        let cut = held.len() - HELD_MAX;
        held.drain(..cut);
    }
}

async fn write(to: &mut pipe::Sender, bytes: &[u8]) -> bool {
    matches!(
        tokio::time::timeout(WRITE_TIMEOUT, to.write_all(bytes)).await,
        Ok(Ok(()))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipe_pair() -> (pipe::Sender, pipe::Receiver) {
        pipe::pipe().unwrap()
    }

    async fn read_to_end(mut r: pipe::Receiver) -> String {
        let mut s = String::new();
        r.read_to_string(&mut s).await.unwrap();
        s
    }

    #[tokio::test]
    async fn lines_written_while_idle_reach_the_next_lease_and_detach_flushes() {
        let (mut plugin_err, agent_side) = pipe_pair();
        let (tx, rx) = mpsc::unbounded_channel();
        let (closed_tx, mut closed) = watch::channel(false);
        tokio::spawn(run(agent_side, rx, closed_tx));

        plugin_err.write_all(b"while idle\n").await.unwrap();
        tokio::task::yield_now().await;
        let (to_cli, cli_reads) = pipe_pair();
        tx.send(RelayCommand::Attach(to_cli)).unwrap();
        plugin_err.write_all(b"during the call\n").await.unwrap();
        let (ack_tx, ack) = oneshot::channel();
        tx.send(RelayCommand::Detach(ack_tx)).unwrap();
        ack.await.unwrap();
        assert_eq!(
            read_to_end(cli_reads).await,
            "while idle\nduring the call\n"
        );

        // After the plugin dies, a new lease's relay gets the rest and then EOF.
        plugin_err.write_all(b"last words\n").await.unwrap();
        drop(plugin_err);
        closed.wait_for(|c| *c).await.unwrap();
        let (to_cli, cli_reads) = pipe_pair();
        tx.send(RelayCommand::Attach(to_cli)).unwrap();
        assert_eq!(read_to_end(cli_reads).await, "last words\n");
    }
}
