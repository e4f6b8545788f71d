//! `stowage storage migrate` through the binary: from the built-in filesystem store to the
//! blob plugin on S3 (moto), with a few thousand documents across collections and groups.
//!
//! The source is seeded through the library (the built-in store's own code, in the test's
//! home); what arrived is read back through the library on the blob plugin and through
//! `stowage storage get`. The blob plugin is another package's binary: build it first
//! (`cargo build -p stowage-plugin-blob`, or `cargo xtask test`).
//!
//! Nothing asserts on elapsed time. The interrupted run copies one document at a time
//! (`--jobs 1`) and is signalled once the destination shows its first documents, so it is
//! stopped partway however fast the machine is.

use std::collections::BTreeMap;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use stowage_host::builtin::FilesystemStorage;
use stowage_host::protocol::{DocumentKey, Precondition, Storage as _};
use stowage_host::{ConfigSource, StorageHandle, Stowage};
use stowage_tests::emulators;
use stowage_tests::processes::{blob_plugin_bin, stowage_bin};

const COLLECTIONS: [&str; 3] = ["claims", "credentials", "installations"];
const GROUPS: [&str; 4] = ["", "dev", "prod", "team a"];

/// A home whose config names `s3`, the blob plugin on a fresh moto bucket; the default
/// built-in store is the source.
struct Setup {
    home: tempfile::TempDir,
    runtime: tokio::runtime::Runtime,
}

impl Setup {
    fn new() -> Setup {
        let (endpoint, bucket) = emulators::moto_bucket();
        let home = tempfile::tempdir().unwrap();
        let config = format!(
            "[storage.s3]\npath = {plugin:?}\ntimeout = \"30s\"\n\
             env = {{ AWS_ACCESS_KEY_ID = \"testing\", AWS_SECRET_ACCESS_KEY = \"testing\" }}\n\
             [storage.s3.config]\nurl = \"s3://{bucket}/stowage\"\nendpoint = {endpoint:?}\n\
             allow-http = true\nregion = \"us-east-1\"\n",
            plugin = blob_plugin_bin(),
        );
        std::fs::write(home.path().join("config.toml"), config).unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        Setup { home, runtime }
    }

    /// The source store, written directly.
    fn source(&self) -> FilesystemStorage {
        FilesystemStorage::new(self.home.path().join("storage"))
    }

    /// The destination through the library, with one kept-alive plugin process.
    fn destination(&self) -> (Stowage, StorageHandle) {
        let source = ConfigSource {
            explicit: Some(self.home.path().join("config.toml")),
            home: Some(self.home.path().to_path_buf()),
        };
        let stowage = Stowage::open(&source)
            .unwrap()
            .with_keep_alive(Duration::from_secs(30));
        let handle = stowage.storage(Some("s3")).unwrap();
        (stowage, handle)
    }

    /// `n` documents spread over every collection and group; returns them.
    fn seed(&self, n: usize) -> BTreeMap<DocumentKey, Vec<u8>> {
        let docs: BTreeMap<DocumentKey, Vec<u8>> = (0..n).map(document).collect();
        let store = self.source();
        self.runtime.block_on(async {
            let mut tasks = tokio::task::JoinSet::new();
            for (key, value) in docs.clone() {
                let store = store.clone();
                tasks.spawn(async move {
                    store
                        .put(&key, value.into(), Precondition::Absent)
                        .await
                        .unwrap()
                });
            }
            while let Some(done) = tasks.join_next().await {
                done.unwrap();
            }
        });
        docs
    }

    /// Every document the destination holds in the seeded groups, read back.
    fn read_destination(&self) -> BTreeMap<DocumentKey, Vec<u8>> {
        let (stowage, s3) = self.destination();
        self.runtime.block_on(async {
            let mut docs = BTreeMap::new();
            for c in COLLECTIONS {
                for g in GROUPS {
                    for meta in s3.list_all(c, g, "").await.unwrap() {
                        let key = DocumentKey::new(c, g, meta.name);
                        let doc = s3.get(&key).await.unwrap();
                        docs.insert(key, doc.value.0);
                    }
                }
            }
            stowage.shutdown().await;
            docs
        })
    }

    /// How many documents the destination holds in one group.
    fn destination_count(&self, s3: &StorageHandle, collection: &str, group: &str) -> usize {
        self.runtime
            .block_on(s3.list_all(collection, group, ""))
            .unwrap()
            .len()
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(stowage_bin());
        cmd.args(args)
            .env("STOWAGE_HOME", self.home.path())
            .env_remove("STOWAGE_CONFIG")
            .env_remove("STOWAGE_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        finish(self.command(args).spawn().unwrap())
    }

    /// `storage migrate --from filesystem --to s3 --output json ARGS…`: the exit code and
    /// the report.
    fn migrate(&self, args: &[&str]) -> (i32, serde_json::Value) {
        let mut all = vec![
            "storage",
            "migrate",
            "--from",
            "filesystem",
            "--to",
            "s3",
            "--output",
            "json",
        ];
        all.extend(args);
        report(self.run(&all))
    }
}

/// Document `i`: a name, with now and then characters that need escaping, and a value of
/// varying size, every 50th one binary.
fn document(i: usize) -> (DocumentKey, Vec<u8>) {
    let name = if i % 100 == 7 {
        format!("ünï code/{i}")
    } else {
        format!("doc-{i:05}")
    };
    let key = DocumentKey::new(
        COLLECTIONS[i % COLLECTIONS.len()],
        GROUPS[(i / 3) % GROUPS.len()],
        name,
    );
    let value = if i.is_multiple_of(50) {
        (0..=255u8)
            .cycle()
            .skip(i % 256)
            .take(300 + i % 700)
            .collect()
    } else {
        format!("{{\"doc\":{i},\"pad\":\"{}\"}}", "x".repeat(i % 900)).into_bytes()
    };
    (key, value)
}

fn finish(mut child: Child) -> Output {
    let deadline = Instant::now() + Duration::from_secs(300);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("a stowage process did not finish within 300s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn report(out: Output) -> (i32, serde_json::Value) {
    let code = out.status.code().unwrap_or(-1);
    let value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "exit {code}, no JSON report ({e}):\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (code, value)
}

fn n(report: &serde_json::Value, field: &str) -> u64 {
    report[field]
        .as_u64()
        .unwrap_or_else(|| panic!("no {field} in {report:#}"))
}

#[test]
fn two_thousand_documents_reach_s3_identical_and_a_rerun_copies_nothing() {
    let setup = Setup::new();
    let docs = setup.seed(2000);
    let bytes: u64 = docs.values().map(|v| v.len() as u64).sum();

    let (code, first) = setup.migrate(&[]);
    assert_eq!(code, 0, "{first:#}");
    assert_eq!(first["verdict"], "complete");
    assert_eq!(n(&first, "groups"), 12);
    assert_eq!(n(&first, "documents"), 2000);
    assert_eq!(n(&first, "bytes"), bytes);
    assert_eq!(n(&first, "copied"), 2000);
    assert_eq!(n(&first, "bytes_written"), bytes);
    let v = &first["verification"];
    assert_eq!(v["matching"], 2000);
    assert_eq!(v["destination_documents"], 2000);
    assert_eq!(v["source_digest"], v["destination_digest"]);

    // Read back independently: every document, byte for byte.
    assert_eq!(setup.read_destination(), docs);
    // …and through the CLI.
    for i in [0, 7, 1999] {
        let (key, value) = document(i);
        let out = setup.run(&[
            "storage",
            "get",
            "-b",
            "s3",
            &key.collection,
            "-g",
            &key.group,
            &key.name,
        ]);
        assert!(out.status.success(), "{out:?}");
        assert_eq!(out.stdout, value, "{key}");
    }

    let (code, second) = setup.migrate(&[]);
    assert_eq!(code, 0, "{second:#}");
    assert_eq!(n(&second, "copied"), 0);
    assert_eq!(n(&second, "overwritten"), 0);
    assert_eq!(n(&second, "skipped_identical"), 2000);
    assert_eq!(n(&second, "bytes_written"), 0);
    assert_eq!(
        second["verification"]["destination_digest"],
        first["verification"]["destination_digest"]
    );
}

#[test]
fn an_interrupted_migration_completes_on_rerun() {
    let setup = Setup::new();
    let docs = setup.seed(2000);
    let mut child = setup
        .command(&[
            "storage",
            "migrate",
            "--from",
            "filesystem",
            "--to",
            "s3",
            "--jobs",
            "1",
            "--output",
            "json",
        ])
        .spawn()
        .unwrap();
    // Copies go in key order: the first group fills first.
    let (stowage, s3) = setup.destination();
    let deadline = Instant::now() + Duration::from_secs(120);
    while setup.destination_count(&s3, "claims", "") < 5 {
        assert!(Instant::now() < deadline, "no progress within 120s");
        assert!(child.try_wait().unwrap().is_none(), "migrate ended early");
        std::thread::sleep(Duration::from_millis(20));
    }
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    let out = finish(child);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let (code, stopped) = report(out);
    assert_eq!(code, 130, "{stopped:#}\n{stderr}");
    assert!(stderr.contains("\"code\":\"interrupted\""), "{stderr}");
    assert_eq!(stopped["interrupted"], true);
    assert_eq!(stopped["verdict"], "interrupted");
    assert!(stopped["verification"].is_null());
    let copied = n(&stopped, "copied");
    assert!((5..2000).contains(&copied), "{stopped:#}");
    assert_eq!(copied + n(&stopped, "not_started"), 2000);
    let there: usize = COLLECTIONS
        .iter()
        .flat_map(|c| GROUPS.iter().map(move |g| (c, g)))
        .map(|(c, g)| setup.destination_count(&s3, c, g))
        .sum();
    assert_eq!(there as u64, copied, "the report counts what arrived");
    setup.runtime.block_on(stowage.shutdown());

    let (code, rest) = setup.migrate(&[]);
    assert_eq!(code, 0, "{rest:#}");
    assert_eq!(n(&rest, "skipped_identical"), copied);
    assert_eq!(n(&rest, "copied"), 2000 - copied);
    assert_eq!(rest["verification"]["matching"], 2000);
    assert_eq!(setup.read_destination(), docs);
}

#[test]
fn a_changed_destination_document_is_kept_unless_overwrite() {
    let setup = Setup::new();
    let docs = setup.seed(60);
    let (code, first) = setup.migrate(&[]);
    assert_eq!((code, n(&first, "copied")), (0, 60), "{first:#}");

    // Someone writes the destination's copy after the migration.
    let (key, original) = document(4);
    let theirs = setup.put_s3(&key, b"written in S3 later");
    assert!(theirs.status.success(), "{theirs:?}");

    let (code, kept) = setup.migrate(&[]);
    assert_eq!(code, 4, "{kept:#}");
    assert_eq!(kept["verdict"], "conflicts");
    assert_eq!(n(&kept, "skipped_different"), 1);
    assert_eq!(n(&kept, "skipped_identical"), 59);
    assert_eq!(kept["different"][0]["name"], key.name.as_str());
    assert_eq!(
        kept["verification"]["different"].as_array().unwrap().len(),
        1
    );
    assert_eq!(
        setup.read_destination()[&key],
        b"written in S3 later".to_vec()
    );

    let (code, replaced) = setup.migrate(&["--overwrite"]);
    assert_eq!(code, 0, "{replaced:#}");
    assert_eq!(n(&replaced, "overwritten"), 1);
    assert_eq!(n(&replaced, "copied"), 0);
    assert_eq!(setup.read_destination()[&key], original);
    assert_eq!(setup.read_destination(), docs);

    // A plugin source cannot enumerate its collections: they must be named.
    let out = setup.run(&["storage", "migrate", "--from", "s3", "--to", "filesystem"]);
    assert_eq!(out.status.code(), Some(7), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--collection"),
        "{out:?}"
    );
    // Named, the way back works, and finds everything already there.
    let (code, back) = report(setup.run(&[
        "storage",
        "migrate",
        "--from",
        "s3",
        "--to",
        "filesystem",
        "-c",
        "claims",
        "-g",
        "",
        "-g",
        "dev",
        "--output",
        "json",
    ]));
    assert_eq!(code, 0, "{back:#}");
    let expected = docs
        .keys()
        .filter(|k| k.collection == "claims" && (k.group.is_empty() || k.group == "dev"))
        .count() as u64;
    assert_eq!(n(&back, "skipped_identical"), expected);
    assert_eq!(n(&back, "copied"), 0);
}

impl Setup {
    /// `stowage storage put -b s3 …` with `value` on stdin.
    fn put_s3(&self, key: &DocumentKey, value: &[u8]) -> Output {
        use std::io::Write as _;
        let mut child = self
            .command(&[
                "storage",
                "put",
                "-b",
                "s3",
                &key.collection,
                "-g",
                &key.group,
                &key.name,
            ])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(value).unwrap();
        finish(child)
    }
}
