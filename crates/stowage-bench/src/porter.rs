//! The cost of one secret resolve through each Porter bridge, short-lived and kept alive,
//! beside the same resolve on the Porter plugin directly (what the bridge adds):
//!
//! - direction 1, Stowage → `stowage-plugin-porter` → the Go fixture plugin (go-plugin 1.0.1);
//! - direction 2, a Porter-style host (this crate's gRPC client, so that no Go host start-up
//!   is counted) → `porter-plugin-stowage` → Stowage's built-in filesystem secrets.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use stowage_host::protocol::{SecretBytes, SecretRef};
use stowage_host::{Config, Stowage};
use stowage_plugin_porter::client::{PorterPlugin, SensitiveJson, Slot, Spec};

use crate::measure::{Report, sample_async};

const GRACE: Duration = Duration::from_secs(2);

fn spec(program: &Path, key: &str, config: serde_json::Value) -> Arc<Spec> {
    Arc::new(Spec {
        program: program.to_path_buf(),
        key: key.into(),
        config_json: SensitiveJson(config.to_string()),
        start_timeout: Duration::from_secs(10),
        stop_grace: GRACE,
    })
}

/// Start, resolve once, shut down: what Porter does for one secret.
async fn short_lived(spec: &Arc<Spec>, key: &str) {
    let plugin = PorterPlugin::start(spec.clone(), Slot::default())
        .await
        .expect("the plugin starts");
    let v = plugin.resolve("secret", key).await.expect("resolves");
    assert_eq!(v, b"0123456789abcdef");
    plugin.shutdown(GRACE).await;
}

pub async fn run(bin_dir: &Path, out_dir: &Path, scale: usize, report: &mut Report) {
    let fixtures = match stowage_tests::porter::build_go_fixtures(&out_dir.join("porter-fixtures"))
    {
        Ok(f) => f,
        Err(e) => {
            eprintln!("skipping the Porter measurements: {e}");
            return;
        }
    };
    let dir = tempfile::tempdir().expect("a temp dir");
    let short = 100 / scale;
    let kept = 3000 / scale;

    // The Porter plugin on its own, driven over gRPC as Porter drives it.
    let go_spec = spec(
        &fixtures.plugin,
        "secrets.fixture.disk",
        serde_json::json!({"dir": dir.path().join("porter")}),
    );
    std::fs::create_dir_all(dir.path().join("porter")).unwrap();
    let direct = PorterPlugin::start(go_spec.clone(), Slot::default())
        .await
        .expect("the Go fixture starts");
    direct
        .create("secret", "bench", "0123456789abcdef".into())
        .await
        .unwrap();
    let samples = sample_async(kept, 200, || async {
        direct.resolve("secret", "bench").await.unwrap();
    })
    .await;
    report.add(
        "porter: kept-alive Resolve on the Go plugin directly",
        samples,
    );
    direct.shutdown(GRACE).await;
    let samples = sample_async(short, 5, || short_lived(&go_spec, "bench")).await;
    report.add(
        "porter: short-lived Resolve on the Go plugin directly",
        samples,
    );

    // Direction 1: Stowage through stowage-plugin-porter.
    let bridge = bin_dir.join("stowage-plugin-porter");
    for keep_alive in [false, true] {
        let text = format!(
            "[secrets.p]\npath = {bridge:?}\n{keep}\n[secrets.p.config]\npath = {plugin:?}\n\
             key = \"secrets.fixture.disk\"\nplugin-config = {{ dir = {dir:?} }}\n",
            bridge = bridge.display().to_string(),
            keep = if keep_alive {
                "keep-alive = \"60s\""
            } else {
                ""
            },
            plugin = fixtures.plugin.display().to_string(),
            dir = dir.path().join("porter").display().to_string(),
        );
        let stowage = Stowage::from_config(
            Config::parse(&text, None, dir.path().to_path_buf()).expect("bench config"),
        );
        let secrets = stowage.secrets(Some("p")).unwrap();
        let samples = sample_async(if keep_alive { kept } else { short }, 5, || async {
            let v = secrets.resolve_one(&SecretRef::new("bench")).await.unwrap();
            assert_eq!(v.expose(), b"0123456789abcdef");
        })
        .await;
        let mode = if keep_alive {
            "kept-alive"
        } else {
            "short-lived"
        };
        report.add(
            format!("porter: {mode} resolve, Stowage → stowage-plugin-porter → Go plugin"),
            samples,
        );
        stowage.shutdown().await;
    }

    // Direction 2: a Porter host through porter-plugin-stowage.
    let home = dir.path().join("stowage-home");
    let config = format!(
        "[secrets.fs]\nbuiltin = \"filesystem\"\n[secrets.fs.config]\nroot = {:?}\n",
        home.join("secrets").display().to_string()
    );
    std::fs::create_dir_all(&home).unwrap();
    let config_file = home.join("config.toml");
    std::fs::write(&config_file, config).unwrap();
    let seed = Stowage::from_config(
        Config::parse(
            &std::fs::read_to_string(&config_file).unwrap(),
            Some(&config_file),
            home.clone(),
        )
        .unwrap(),
    );
    seed.secrets(Some("fs"))
        .unwrap()
        .put("bench", SecretBytes::from("0123456789abcdef"))
        .await
        .unwrap();
    let provider = spec(
        &bin_dir.join("porter-plugin-stowage"),
        "secrets.stowage.fs",
        serde_json::json!({"config": config_file, "home": home}),
    );
    let kept_plugin = PorterPlugin::start(provider.clone(), Slot::default())
        .await
        .expect("porter-plugin-stowage starts");
    let samples = sample_async(kept, 200, || async {
        kept_plugin.resolve("secret", "bench").await.unwrap();
    })
    .await;
    report.add(
        "porter: kept-alive Resolve, Porter host → porter-plugin-stowage → filesystem",
        samples,
    );
    kept_plugin.shutdown(GRACE).await;
    let samples = sample_async(short, 5, || short_lived(&provider, "bench")).await;
    report.add(
        "porter: short-lived Resolve, Porter host → porter-plugin-stowage → filesystem",
        samples,
    );
}

/// The ratios of this section: each bridge against the floors and against the Porter plugin
/// driven directly.
pub fn ratios(report: &mut Report, spawn: Option<f64>, pipe: Option<f64>) {
    let m = |r: &Report, n: &str| r.median(n);
    let d1_short = m(
        report,
        "porter: short-lived resolve, Stowage → stowage-plugin-porter → Go plugin",
    );
    let d1_kept = m(
        report,
        "porter: kept-alive resolve, Stowage → stowage-plugin-porter → Go plugin",
    );
    let go_short = m(
        report,
        "porter: short-lived Resolve on the Go plugin directly",
    );
    let go_kept = m(
        report,
        "porter: kept-alive Resolve on the Go plugin directly",
    );
    let d2_short = m(
        report,
        "porter: short-lived Resolve, Porter host → porter-plugin-stowage → filesystem",
    );
    let d2_kept = m(
        report,
        "porter: kept-alive Resolve, Porter host → porter-plugin-stowage → filesystem",
    );
    let div = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| a / b);
    let info = |_: f64| true;
    report.ratio(
        "porter d1 short-lived / spawn floor",
        div(d1_short, spawn),
        "(reported)",
        info,
    );
    report.ratio(
        "porter d1 short-lived / Go plugin short-lived directly",
        div(d1_short, go_short),
        "(reported)",
        info,
    );
    report.ratio(
        "porter d1 kept-alive / pipe round trip",
        div(d1_kept, pipe),
        "(reported)",
        info,
    );
    report.ratio(
        "porter d1 kept-alive / Go plugin kept-alive directly",
        div(d1_kept, go_kept),
        "(reported)",
        info,
    );
    report.ratio(
        "porter d2 short-lived / spawn floor",
        div(d2_short, spawn),
        "(reported)",
        info,
    );
    report.ratio(
        "porter d2 short-lived / Go plugin short-lived directly",
        div(d2_short, go_short),
        "(reported)",
        info,
    );
    report.ratio(
        "porter d2 kept-alive / pipe round trip",
        div(d2_kept, pipe),
        "(reported)",
        info,
    );
    report.ratio(
        "porter d2 kept-alive / Go plugin kept-alive directly",
        div(d2_kept, go_kept),
        "(reported)",
        info,
    );
}
