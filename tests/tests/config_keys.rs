//! Plugins that declare their sensitive config keys (`config.keys`) get exactly those
//! redacted by `config show --source`; the others are shown.

use std::process::Command;

use stowage_host::PluginCommand;
use stowage_tests::processes::stowage_bin;

const TESTKIT: &str = env!("CARGO_BIN_EXE_stowage-plugin-testkit");

#[tokio::test]
async fn the_host_asks_a_plugin_which_keys_are_sensitive() {
    let command = PluginCommand {
        backend: "tk".into(),
        program: TESTKIT.into(),
        args: Vec::new(),
        env: Default::default(),
        ..Default::default()
    };
    let keys =
        stowage_host::plugin_sensitive_config_keys(&command, std::time::Duration::from_secs(10))
            .await
            .unwrap();
    // The testkit declares that none of its keys are sensitive.
    assert_eq!(keys, Some(Vec::new()));
}

#[test]
fn config_show_trusts_the_plugins_declaration_and_falls_back_without_one() {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(
        home.path().join("config.toml"),
        format!(
            "[storage.tk]\npath = \"{TESTKIT}\"\n[storage.tk.config]\n\
             fault-token = \"visible-because-declared\"\n\
             [storage.other]\npath = \"/nonexistent/stowage-plugin-x\"\n[storage.other.config]\n\
             fault-token = \"hidden-by-fallback\"\n"
        ),
    )
    .unwrap();
    let out = Command::new(stowage_bin())
        .args(["config", "show", "--source"])
        .env("STOWAGE_HOME", home.path())
        .env_remove("STOWAGE_CONFIG")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("visible-because-declared"), "{text}");
    assert!(!text.contains("hidden-by-fallback"), "{text}");
}

/// `plugins test BACKEND` starts the plugin exactly as operations on that backend do,
/// with the host's home and the backend's data directory in its environment.
#[test]
fn plugins_test_runs_a_backend_with_its_real_environment() {
    let home = tempfile::tempdir().unwrap();
    let env_file = home.path().join("env");
    std::fs::write(
        home.path().join("config.toml"),
        format!(
            "[storage.tk]\npath = \"{TESTKIT}\"\n[storage.tk.config]\nenv-file = \"{}\"\n",
            env_file.display()
        ),
    )
    .unwrap();
    let out = Command::new(stowage_bin())
        .args(["plugins", "test", "tk", "--only", "storage"])
        .env("STOWAGE_HOME", home.path())
        .env_remove("STOWAGE_CONFIG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let text = std::fs::read_to_string(&env_file).unwrap();
    let h = home.path().display();
    assert!(text.contains(&format!("STOWAGE_HOME={h}\n")), "{text}");
    assert!(
        text.contains(&format!(
            "STOWAGE_PLUGIN_DATA_DIR={h}/plugin-data/storage/tk\n"
        )),
        "{text}"
    );
}
