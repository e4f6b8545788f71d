//! A batch resolve of 1,000 references goes to one plugin process in one call, and every
//! answer lands in its own slot.

use std::time::Duration;

use stowage_host::protocol::{ErrorCode, SecretBytes, SecretRef};
use stowage_host::{PluginOptions, SecretsHandle};
use stowage_tests::plugin_command;

const TESTKIT: &str = env!("CARGO_BIN_EXE_stowage-plugin-testkit");

fn testkit(config: serde_json::Value, keep_alive: Option<Duration>) -> SecretsHandle {
    SecretsHandle::for_plugin(
        plugin_command(TESTKIT, &[], Default::default()),
        config.to_string(),
        PluginOptions {
            timeout: Duration::from_secs(60),
            keep_alive,
            retries: 0,
        },
    )
}

#[tokio::test]
async fn a_thousand_references_resolve_in_one_call_of_one_process() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("secrets");
    let (calls, pids) = (dir.path().join("calls"), dir.path().join("pids"));
    let seed = testkit(
        serde_json::json!({ "root": root }),
        Some(Duration::from_secs(60)),
    );
    for i in 0..1000 {
        seed.put(
            &format!("s{i:04}"),
            SecretBytes::from(format!("value-{i}").as_str()),
        )
        .await
        .unwrap();
    }
    seed.shutdown().await;

    // Short-lived: a process per operation, so one process means one operation.
    let secrets = testkit(
        serde_json::json!({ "root": root, "calls-file": calls, "pid-file": pids }),
        None,
    );
    let mut refs: Vec<SecretRef> = (0..1000)
        .map(|i| SecretRef::new(format!("s{i:04}")))
        .collect();
    refs[500] = SecretRef::new("missing");
    let answers = secrets.resolve(&refs).await.unwrap();
    assert_eq!(answers.len(), refs.len());
    for (i, answer) in answers.iter().enumerate() {
        if i == 500 {
            let e = answer.as_ref().unwrap_err();
            assert_eq!(e.code(), ErrorCode::NotFound, "{e}");
        } else {
            let value = answer.as_ref().unwrap();
            assert_eq!(value.expose(), format!("value-{i}").as_bytes());
        }
    }
    assert_eq!(std::fs::read_to_string(&calls).unwrap(), "resolve 1000\n");
    let started = std::fs::read_to_string(&pids).unwrap();
    assert_eq!(started.lines().count(), 1, "one plugin process: {started}");
}
