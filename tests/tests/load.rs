//! Load through the host library: 16 operations at a time, a bounded number of them,
//! against one kept-alive plugin process and against a fresh process per operation. Every
//! call must be answered with the right data, and afterwards the host holds no more file
//! descriptors and has no more child processes than before.

use std::sync::Mutex;
use std::time::Duration;

use stowage_host::protocol::{CountQuery, DocumentKey, Precondition};
use stowage_host::{PluginCommand, PluginOptions, StorageHandle};
use stowage_tests::processes::{descendants, open_fds, wait_descendants_within};

const TESTKIT: &str = env!("CARGO_BIN_EXE_stowage-plugin-testkit");

/// Operations in flight at once.
const CONCURRENCY: usize = 16;
/// A bound for a broken build, far above what the whole run needs: not a measurement.
const HANG_BOUND: Duration = Duration::from_secs(300);

/// The two tests count this process's descendants and descriptors: one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A handle on the testkit plugin storing under `dir`; every plugin process it starts
/// appends its pid to `dir/pids`.
fn handle(dir: &std::path::Path, keep_alive: Option<Duration>) -> StorageHandle {
    let command = PluginCommand {
        backend: "load".into(),
        program: TESTKIT.into(),
        args: Vec::new(),
        ..Default::default()
    };
    let config = serde_json::json!({
        "root": dir.join("data").display().to_string(),
        "pid-file": dir.join("pids").display().to_string(),
    })
    .to_string();
    StorageHandle::for_plugin(
        command,
        config,
        PluginOptions {
            timeout: Duration::from_secs(60),
            keep_alive,
            retries: 0,
        },
    )
}

/// `CONCURRENCY` tasks, each doing `per_task` put-then-get rounds on keys of its own;
/// returns how many rounds were answered correctly.
async fn hammer(storage: &StorageHandle, per_task: usize) -> usize {
    let tasks = (0..CONCURRENCY).map(|task| {
        let storage = storage.clone();
        tokio::spawn(async move {
            let mut answered = 0;
            for round in 0..per_task {
                let key = DocumentKey::new("load", "dev", format!("t{task}-r{round}"));
                let value = format!("task {task} round {round}").into_bytes();
                let version = storage
                    .put(&key, value.clone(), Precondition::Absent)
                    .await
                    .unwrap_or_else(|e| panic!("put {key}: {e}"));
                let doc = storage
                    .get(&key)
                    .await
                    .unwrap_or_else(|e| panic!("get {key}: {e}"));
                assert_eq!(doc.value.as_slice(), value.as_slice(), "{key}");
                assert_eq!(doc.version, version, "{key}");
                answered += 1;
            }
            answered
        })
    });
    let mut total = 0;
    for t in futures::future::join_all(tasks).await {
        total += t.expect("a load task panicked");
    }
    total
}

fn started(dir: &std::path::Path) -> usize {
    std::fs::read_to_string(dir.join("pids"))
        .unwrap_or_default()
        .lines()
        .count()
}

/// Runs the load; returns how many plugin processes it started.
fn load(keep_alive: Option<Duration>, per_task: usize) -> usize {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        // One call first, so what the runtime sets up once (its child-reaping signal
        // pipe, say) is in the baseline, not counted as a leak.
        let warm = handle(dir.path(), None);
        let query = CountQuery {
            collection: "load".into(),
            group: "dev".into(),
            prefix: String::new(),
        };
        assert_eq!(warm.count(&query).await.unwrap(), 0);
        warm.shutdown().await;
        let processes = descendants();
        let fds = open_fds();
        let warm_started = started(dir.path());

        let storage = handle(dir.path(), keep_alive);
        let answered = tokio::time::timeout(HANG_BOUND, hammer(&storage, per_task))
            .await
            .expect("the load hung");
        assert_eq!(answered, CONCURRENCY * per_task, "every call answered");
        tokio::time::timeout(HANG_BOUND, storage.shutdown())
            .await
            .expect("shutdown hung");
        drop(storage);

        let left = wait_descendants_within(&processes, Duration::from_secs(30));
        assert!(left.is_empty(), "plugin processes left: {left:?}");
        // Descriptors close as the last tasks holding pipes finish: wait for it, bounded.
        let mut now = open_fds();
        for _ in 0..500 {
            if now <= fds {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            now = open_fds();
        }
        assert!(
            now <= fds,
            "{now} descriptors open after the load, {fds} before"
        );
        started(dir.path()) - warm_started
    })
}

#[test]
fn sixteen_at_a_time_through_one_kept_alive_plugin() {
    let started = load(Some(Duration::from_secs(60)), 16);
    assert_eq!(started, 1, "one process served every call");
}

#[test]
fn sixteen_at_a_time_with_a_process_per_operation() {
    let started = load(None, 4);
    // A put and a get per round, each in a process of its own.
    assert_eq!(started, CONCURRENCY * 4 * 2);
}
