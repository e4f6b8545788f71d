//! Calls through the host library against the testkit plugin (in memory, release build):
//! short-lived operations, kept-alive calls, and batches.

use std::path::Path;
use std::time::Instant;

use futures::StreamExt as _;
use stowage_host::protocol::{DocumentKey, ErrorCode, Precondition, SecretBytes, SecretRef};
use stowage_host::{Config, Stowage};

use crate::measure::{Report, sample_async};

fn stowage(bin_dir: &Path, codec: &str, keep_alive: bool) -> Stowage {
    stowage_with(&bin_dir.join("stowage-plugin-testkit"), codec, keep_alive)
}

pub(crate) fn stowage_with(testkit: &Path, codec: &str, keep_alive: bool) -> Stowage {
    stowage_pinned(testkit, codec, keep_alive, None)
}

/// With `pin`, both backends carry `sha256 = "…"`: every start verifies the binary and
/// runs the sealed copy of the verified bytes.
fn stowage_pinned(
    testkit: &Path,
    codec: &str,
    keep_alive: bool,
    pin: Option<stowage_host::Sha256Digest>,
) -> Stowage {
    assert!(
        testkit.is_file(),
        "{} is missing: build it in release first",
        testkit.display()
    );
    let keep = if keep_alive {
        "keep-alive = \"60s\"\n"
    } else {
        ""
    };
    let keep = match pin {
        Some(d) => format!("{keep}sha256 = \"{d}\"\n"),
        None => keep.to_owned(),
    };
    let text = format!(
        "[storage.b]\npath = \"{p}\"\nargs = [\"--codec\", \"{codec}\"]\n{keep}\n[secrets.b]\npath = \"{p}\"\nargs = [\"--codec\", \"{codec}\"]\n{keep}",
        p = testkit.display()
    );
    Stowage::from_config(Config::parse(&text, None, std::env::temp_dir()).expect("bench config"))
}

pub async fn run(bin_dir: &Path, scale: usize, report: &mut Report) {
    let key = DocumentKey::new("bench", "", "doc");
    if let Some(static_testkit) = crate::startup::static_testkit(bin_dir) {
        // The same short-lived operation against a statically linked plugin binary.
        let s = stowage_with(&static_testkit, "bincode", false);
        let storage = s.storage(Some("b")).unwrap();
        let samples = sample_async(300 / scale, 20, || async {
            let e = storage
                .get(&key)
                .await
                .expect_err("an empty in-memory store");
            assert_eq!(e.code(), ErrorCode::NotFound, "{e}");
        })
        .await;
        report.add(
            "short-lived storage.get (bincode, static plugin binary)",
            samples,
        );
    }
    {
        // Pinned (`sha256`): the same short-lived operation, verified and run from the
        // sealed copy; and what the first start in a process pays, hashing the binary.
        let testkit = bin_dir.join("stowage-plugin-testkit");
        let digest = stowage_host::Sha256Digest::of_file(&testkit).expect("hash the testkit");
        let s = stowage_pinned(&testkit, "bincode", false, Some(digest));
        let storage = s.storage(Some("b")).unwrap();
        let samples = sample_async(300 / scale, 20, || async {
            let e = storage
                .get(&key)
                .await
                .expect_err("an empty in-memory store");
            assert_eq!(e.code(), ErrorCode::NotFound, "{e}");
        })
        .await;
        report.add("short-lived storage.get (bincode, pinned sha256)", samples);
        let samples = sample_async(100 / scale, 5, || async {
            stowage_host::Sha256Digest::of_file(&testkit).unwrap();
        })
        .await;
        report.add(
            "SHA-256 of the testkit binary (a pin's first start in a process)",
            samples,
        );
    }
    for codec in ["bincode", "json"] {
        // 2. short-lived: spawn, handshake, configure, one call, close, wait.
        let s = stowage(bin_dir, codec, false);
        let storage = s.storage(Some("b")).unwrap();
        let secrets = s.secrets(Some("b")).unwrap();
        let samples = sample_async(300 / scale, 20, || async {
            let e = storage
                .get(&key)
                .await
                .expect_err("an empty in-memory store");
            assert_eq!(e.code(), ErrorCode::NotFound, "{e}");
        })
        .await;
        report.add(format!("short-lived storage.get ({codec})"), samples);
        let samples = sample_async(300 / scale, 20, || async {
            let e = secrets
                .resolve_one(&SecretRef::new("missing"))
                .await
                .expect_err("an empty store");
            assert_eq!(e.code(), ErrorCode::NotFound, "{e}");
        })
        .await;
        report.add(format!("short-lived secrets.resolve ({codec})"), samples);

        // 3. kept-alive: one process, sequential and 64 in flight.
        let s = stowage(bin_dir, codec, true);
        let storage = s.storage(Some("b")).unwrap();
        storage
            .put(&key, vec![1u8; 64], Precondition::Any)
            .await
            .unwrap();
        let samples = sample_async(20_000 / scale, 1000, || async {
            storage.get(&key).await.unwrap();
        })
        .await;
        report.add(
            format!("kept-alive storage.get sequential ({codec})"),
            samples,
        );
        let calls = 100_000 / scale;
        let started = Instant::now();
        let done = futures::stream::iter(0..calls)
            .map(|_| storage.get(&key))
            .buffer_unordered(64)
            .filter(|r| futures::future::ready(r.is_ok()))
            .count()
            .await;
        let secs = started.elapsed().as_secs_f64();
        assert_eq!(done, calls, "every call must succeed");
        report.figure(
            format!("kept-alive calls/s, 64 in flight ({codec})"),
            calls as f64 / secs,
            "calls/s",
        );

        // 4. batches through one process.
        if codec == "bincode" {
            let secrets = s.secrets(Some("b")).unwrap();
            for i in 0..100 {
                secrets
                    .put(
                        &format!("s{i}"),
                        SecretBytes::from("0123456789abcdef0123456789abcdef"),
                    )
                    .await
                    .unwrap();
            }
            for n in [1usize, 10, 100] {
                let refs: Vec<SecretRef> =
                    (0..n).map(|i| SecretRef::new(format!("s{i}"))).collect();
                let samples = sample_async(5000 / scale, 200, || async {
                    let answers = secrets.resolve(&refs).await.unwrap();
                    assert!(answers.iter().all(Result::is_ok));
                })
                .await;
                report.add(format!("resolve batch of {n} ({codec})"), samples);
            }
        }
        s.shutdown().await;
    }
}
