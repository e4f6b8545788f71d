//! Stores that grow (`--only scale`): `get`, one page (the first and one from the middle),
//! every page, and `count`, with 1k, 10k and 100k documents in one group, on the built-in
//! filesystem store, the blob plugin on `file://` and the blob plugin on S3 (moto, started
//! for this run and gone with it); and a batch resolve of 1,000 secrets on the built-in
//! store, the testkit plugin and AWS Secrets Manager (moto), against one secret.
//!
//! Plugins are kept alive, so what is measured is the store, not process start-up.
//! `--quick` fills moto with 1k and 10k documents only: moto answers one request at a
//! time (see tests/emulators/moto_serial.py), and 100k puts take it several minutes.

use std::path::Path;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use stowage_host::builtin::{FilesystemSecrets, FilesystemStorage};
use stowage_host::protocol::{CountQuery, DocumentKey, ListQuery, Precondition, SecretBytes};
use stowage_host::protocol::{MAX_PAGE_SIZE, SecretRef};
use stowage_host::{Config, SecretsHandle, StorageHandle, Stowage};

use crate::measure::{Report, sample_async};

const SIZES: [usize; 3] = [1_000, 10_000, 100_000];
const PAGE: u32 = 100;
const BATCH: usize = 1_000;
const AFTER_A_WRITE: &str = "list first page after a write (index rebuilt)";

/// moto's fixed test credentials, and nothing from the developer's AWS setup.
const AWS_ENV: &str = "env = { AWS_ACCESS_KEY_ID = \"testing\", AWS_SECRET_ACCESS_KEY = \
     \"testing\", AWS_EC2_METADATA_DISABLED = \"true\", AWS_CONFIG_FILE = \"/nonexistent/c\", \
     AWS_SHARED_CREDENTIALS_FILE = \"/nonexistent/c\" }\n";

fn name(i: usize) -> String {
    format!("doc-{i:06}")
}

fn group(n: usize) -> String {
    format!("n{n}")
}

/// A store's series name for one operation at one size.
fn series(store: &str, op: &str, n: usize) -> String {
    format!("scale {store}: {op} at {}k docs", n / 1000)
}

/// Writes `n` documents straight into the built-in store's layout (`<root>/<collection>/
/// <group>/<name>`, header line then value), as its writer would but without a sync per
/// file: seeding 100k documents through `put` would spend minutes in `fsync`.
fn seed_filesystem(root: &Path, n: usize) {
    let dir = root.join("bench").join(group(n));
    std::fs::create_dir_all(&dir).expect("create the group directory");
    for i in 0..n {
        let value = format!("stowage/1 1-{i:016x}\n{{\"doc\":{i}}}");
        std::fs::write(dir.join(name(i)), value).expect("seed a document");
    }
}

/// Puts `n` documents through the handle, 32 in flight.
async fn seed_through(storage: &StorageHandle, n: usize) {
    let g = group(n);
    let done = futures::stream::iter(0..n)
        .map(|i| {
            let key = DocumentKey::new("bench", &g, name(i));
            async move {
                storage
                    .put(
                        &key,
                        format!("{{\"doc\":{i}}}").into_bytes(),
                        Precondition::Any,
                    )
                    .await
            }
        })
        .buffer_unordered(32)
        .filter(|r| futures::future::ready(r.is_ok()))
        .count()
        .await;
    assert_eq!(done, n, "every seeding put must succeed");
}

/// The five measurements on one store at one size.
async fn measure(
    storage: &StorageHandle,
    store: &str,
    n: usize,
    scale: usize,
    report: &mut Report,
) {
    let g = group(n);
    let (samples, warmup) = (100 / scale, 3);
    let key = DocumentKey::new("bench", &g, name(n / 2));
    let s = sample_async(samples, warmup, || async {
        storage.get(&key).await.expect("get");
    })
    .await;
    report.add(series(store, "get", n), s);
    let page = |token: Option<String>, size: u32| ListQuery {
        collection: "bench".into(),
        group: g.clone(),
        prefix: String::new(),
        page_size: size,
        page_token: token,
    };
    let first = page(None, PAGE);
    let s = sample_async(samples, warmup, || async {
        let p = storage.list(&first).await.expect("list");
        assert_eq!(p.items.len(), PAGE as usize);
    })
    .await;
    report.add(series(store, "list first page", n), s);
    let middle = page(Some(name(n / 2 - 1)), PAGE);
    let s = sample_async(samples, warmup, || async {
        let p = storage.list(&middle).await.expect("list");
        assert_eq!(p.items[0].name, name(n / 2));
    })
    .await;
    report.add(series(store, "list middle page", n), s);
    let count = CountQuery {
        collection: "bench".into(),
        group: g.clone(),
        prefix: String::new(),
    };
    let s = sample_async(samples, warmup, || async {
        assert_eq!(storage.count(&count).await.expect("count"), n as u64);
    })
    .await;
    report.add(series(store, "count", n), s);
    let all_samples = if scale > 1 { 1 } else { 3 };
    let s = sample_async(all_samples, 0, || async {
        let mut q = page(None, MAX_PAGE_SIZE);
        let mut seen = 0;
        loop {
            let p = storage.list(&q).await.expect("list");
            seen += p.items.len();
            match p.next_page_token {
                Some(t) => q.page_token = Some(t),
                None => break,
            }
        }
        assert_eq!(seen, n);
    })
    .await;
    report.add(series(store, "list all pages", n), s);
}

/// The first page right after a write: the group changed, so its index is read again
/// from the directory (what every page cost before the index).
async fn after_a_write(storage: &StorageHandle, n: usize, scale: usize, report: &mut Report) {
    let g = group(n);
    let key = DocumentKey::new("bench", &g, name(0));
    let first = ListQuery {
        collection: "bench".into(),
        group: g.clone(),
        prefix: String::new(),
        page_size: PAGE,
        page_token: None,
    };
    let mut samples = Vec::new();
    for _ in 0..20 / scale {
        storage
            .put(&key, b"{}".to_vec(), Precondition::Any)
            .await
            .expect("put");
        let t = Instant::now();
        storage.list(&first).await.expect("list");
        samples.push(t.elapsed().as_secs_f64() * 1e6);
    }
    report.add(series("filesystem", AFTER_A_WRITE, n), samples);
}

fn plugin_storage(text: &str) -> StorageHandle {
    let config = Config::parse(text, None, std::env::temp_dir()).expect("bench config");
    Stowage::from_config(config)
        .storage(Some("b"))
        .expect("the backend")
}

pub async fn run(bin_dir: &Path, scale: usize, report: &mut Report) {
    let scratch = tempfile::tempdir().expect("a scratch directory");
    let blob = bin_dir.join("stowage-plugin-blob");

    eprintln!("   filesystem store: seeding");
    let root = scratch.path().join("fs");
    for n in SIZES {
        seed_filesystem(&root, n);
    }
    // A name index is believed only once written 2 s after the group's last change.
    std::thread::sleep(Duration::from_millis(2100));
    let fs = StorageHandle::filesystem(
        "fs",
        FilesystemStorage::new(&root),
        Duration::from_secs(600),
    );
    for n in SIZES {
        eprintln!("   filesystem store: {n} documents");
        measure(&fs, "filesystem", n, scale, report).await;
        after_a_write(&fs, n, scale, report).await;
    }

    let local = scratch.path().join("blob");
    std::fs::create_dir_all(&local).expect("create the file:// directory");
    let file = plugin_storage(&format!(
        "[storage.b]\npath = {blob:?}\nkeep-alive = \"600s\"\ntimeout = \"600s\"\n\
         [storage.b.config]\nurl = \"file://{}\"\n",
        local.display()
    ));
    for n in SIZES {
        eprintln!("   blob file://: seeding and measuring {n} documents");
        seed_through(&file, n).await;
        measure(&file, "blob file://", n, scale, report).await;
    }
    file.shutdown().await;

    let (endpoint, bucket) = stowage_tests::emulators::moto_bucket();
    let s3 = plugin_storage(&format!(
        "[storage.b]\npath = {blob:?}\nkeep-alive = \"600s\"\ntimeout = \"600s\"\n{AWS_ENV}\
         [storage.b.config]\nurl = \"s3://{bucket}/stowage\"\nendpoint = {endpoint:?}\n\
         allow-http = true\nregion = \"us-east-1\"\n"
    ));
    let moto_sizes = if scale > 1 { &SIZES[..2] } else { &SIZES[..] };
    for &n in moto_sizes {
        eprintln!("   blob on moto S3: seeding and measuring {n} documents");
        seed_through(&s3, n).await;
        measure(&s3, "blob moto S3", n, scale, report).await;
    }
    s3.shutdown().await;

    batches(bin_dir, scratch.path(), &endpoint, scale, report).await;
    ratios(report);
}

/// A 1,000-secret batch and a 1-secret resolve on each secrets backend.
async fn batches(bin_dir: &Path, scratch: &Path, moto: &str, scale: usize, report: &mut Report) {
    let builtin = SecretsHandle::builtin(
        "fs",
        std::sync::Arc::new(FilesystemSecrets::new(scratch.join("secrets"))),
    );
    let testkit = Stowage::from_config(
        Config::parse(
            &format!(
                "[secrets.b]\npath = {:?}\nkeep-alive = \"600s\"\n",
                bin_dir.join("stowage-plugin-testkit")
            ),
            None,
            std::env::temp_dir(),
        )
        .expect("bench config"),
    )
    .secrets(Some("b"))
    .expect("the backend");
    let prefix = stowage_tests::emulators::fresh_name("batch") + "/";
    let aws = Stowage::from_config(
        Config::parse(
            &format!(
                "[secrets.b]\npath = {:?}\nkeep-alive = \"600s\"\ntimeout = \"600s\"\n{AWS_ENV}\
                 [secrets.b.config]\nendpoint-url = {moto:?}\nregion = \"us-east-1\"\n\
                 prefix = {prefix:?}\n",
                bin_dir.join("stowage-plugin-aws-secretsmanager")
            ),
            None,
            std::env::temp_dir(),
        )
        .expect("bench config"),
    )
    .secrets(Some("b"))
    .expect("the backend");
    let refs: Vec<SecretRef> = (0..BATCH)
        .map(|i| SecretRef::new(format!("s{i:04}")))
        .collect();
    for (label, secrets) in [
        ("built-in", &builtin),
        ("testkit", &testkit),
        ("aws moto", &aws),
    ] {
        eprintln!("   resolve batches: {label}");
        for r in &refs {
            secrets
                .put(
                    &r.key,
                    SecretBytes::from("0123456789abcdef0123456789abcdef"),
                )
                .await
                .expect("seed a secret");
        }
        let one = &refs[..1];
        let s = sample_async(200 / scale, 5, || async {
            secrets.resolve(one).await.expect("resolve")[0]
                .as_ref()
                .expect("a value");
        })
        .await;
        report.add(format!("scale resolve 1 secret ({label})"), s);
        let s = sample_async(50 / scale, 2, || async {
            let answers = secrets.resolve(&refs).await.expect("resolve");
            assert!(answers.iter().all(Result::is_ok), "every secret resolves");
        })
        .await;
        report.add(format!("scale resolve {BATCH} secrets ({label})"), s);
        secrets.shutdown().await;
    }
}

fn div(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    a.zip(b).map(|(a, b)| a / b)
}

/// Cost at the largest measured size against 1k, per store and operation, and batches.
pub fn ratios(report: &mut Report) {
    for store in ["filesystem", "blob file://", "blob moto S3"] {
        let Some(big) = SIZES
            .iter()
            .rev()
            .copied()
            .find(|&n| n > 1000 && report.median(&series(store, "get", n)).is_some())
        else {
            continue;
        };
        let k = big / 1000;
        for op in [
            "get",
            "list first page",
            "list middle page",
            "count",
            "list all pages",
        ] {
            let value = div(
                report.median(&series(store, op, big)),
                report.median(&series(store, op, 1000)),
            );
            let name = format!("scale {store}: {op} at {k}k / at 1k");
            match op {
                "list all pages" => {
                    let cap = k as f64 * 1.5;
                    report.ratio(name, value, format!("≤ {cap:.0} (linear)"), move |v| {
                        v <= cap
                    });
                }
                "count" if store != "filesystem" => report.ratio(
                    name,
                    value,
                    "(reported: an object store counts by listing)",
                    |_| true,
                ),
                _ => report.ratio(name, value, "≤ 1.5 (flat)", |v| v <= 1.5),
            }
        }
    }
    report.ratio(
        "scale filesystem: first page after a write / settled index, at 100k",
        div(
            report.median(&series("filesystem", AFTER_A_WRITE, 100_000)),
            report.median(&series("filesystem", "list first page", 100_000)),
        ),
        "(reported)",
        |_| true,
    );
    for (label, target, cap) in [
        ("built-in", "≤ 10", 10.0),
        ("testkit", "≤ 10", 10.0),
        ("aws moto", "≤ 50 (one call per 20 ids)", 50.0),
    ] {
        report.ratio(
            format!("scale resolve {BATCH} secrets / 1 secret ({label})"),
            div(
                report.median(&format!("scale resolve {BATCH} secrets ({label})")),
                report.median(&format!("scale resolve 1 secret ({label})")),
            ),
            target,
            |v| v <= cap,
        );
    }
}
