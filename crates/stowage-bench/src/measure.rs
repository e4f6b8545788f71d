//! Samples, percentiles, ratios and the report.

use std::time::Instant;

/// One measured quantity: every sample, in microseconds.
pub struct Series {
    pub name: String,
    pub samples_us: Vec<f64>,
}

impl Series {
    pub fn percentile(&self, p: f64) -> f64 {
        let mut s = self.samples_us.clone();
        s.sort_by(|a, b| a.total_cmp(b));
        if s.is_empty() {
            return f64::NAN;
        }
        let rank = ((p / 100.0) * (s.len() - 1) as f64).round() as usize;
        s[rank.min(s.len() - 1)]
    }

    pub fn median(&self) -> f64 {
        self.percentile(50.0)
    }
}

/// A figure that is not a latency (calls/s, MiB, bytes).
pub struct Figure {
    pub name: String,
    pub value: f64,
    pub unit: &'static str,
}

/// A ratio against a baseline measured in the same run, with the target it is held to.
pub struct Ratio {
    pub name: String,
    pub value: f64,
    pub target: String,
    pub met: Option<bool>,
}

#[derive(Default)]
pub struct Report {
    pub series: Vec<Series>,
    pub figures: Vec<Figure>,
    pub ratios: Vec<Ratio>,
}

/// Times `f` `n` times after `warmup` unmeasured runs.
pub fn sample(n: usize, warmup: usize, mut f: impl FnMut()) -> Vec<f64> {
    for _ in 0..warmup {
        f();
    }
    (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect()
}

/// Async version of [`sample`].
pub async fn sample_async<F, Fut>(n: usize, warmup: usize, mut f: F) -> Vec<f64>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for _ in 0..warmup {
        f().await;
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        f().await;
        out.push(t.elapsed().as_secs_f64() * 1e6);
    }
    out
}

impl Report {
    pub fn add(&mut self, name: impl Into<String>, samples_us: Vec<f64>) {
        let s = Series {
            name: name.into(),
            samples_us,
        };
        eprintln!(
            "   {:<58} median {:>10.1} µs  p90 {:>10.1}  p99 {:>10.1}",
            s.name,
            s.median(),
            s.percentile(90.0),
            s.percentile(99.0)
        );
        self.series.push(s);
    }

    pub fn figure(&mut self, name: impl Into<String>, value: f64, unit: &'static str) {
        let f = Figure {
            name: name.into(),
            value,
            unit,
        };
        eprintln!("   {:<58} {:>12.1} {}", f.name, f.value, f.unit);
        self.figures.push(f);
    }

    pub fn median(&self, name: &str) -> Option<f64> {
        self.series
            .iter()
            .find(|s| s.name == name)
            .map(Series::median)
    }

    pub fn figure_value(&self, name: &str) -> Option<f64> {
        self.figures
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.value)
    }

    pub fn ratio(
        &mut self,
        name: impl Into<String>,
        value: Option<f64>,
        target: impl Into<String>,
        met: impl Fn(f64) -> bool,
    ) {
        if let Some(value) = value.filter(|v| v.is_finite()) {
            let met = Some(met(value));
            self.ratios.push(Ratio {
                name: name.into(),
                value,
                target: target.into(),
                met,
            });
        }
    }

    /// The ratios the issue sets targets for.
    pub fn ratios(&mut self, floors: &crate::floors::Floors) {
        let spawn = self.median(&floors.spawn);
        let pipe = self.median(&floors.pipe);
        let v = self
            .median("reference: the same spawn with a pre_exec hook (fork, not posix_spawn)")
            .zip(spawn)
            .map(|(a, b)| a / b);
        self.ratio(
            "spawn with a pre_exec hook / spawn floor (why plugins set their own parent-death signal)".to_owned(),
            v,
            "informational",
            |_| true,
        );
        for codec in ["bincode", "json"] {
            for op in ["storage.get", "secrets.resolve"] {
                let v = self
                    .median(&format!("short-lived {op} ({codec})"))
                    .zip(spawn)
                    .map(|(a, b)| a / b);
                self.ratio(
                    format!("short-lived {op} ({codec}) / spawn floor"),
                    v,
                    "≤ 2",
                    |r| r <= 2.0,
                );
            }
            let v = self
                .median(&format!("kept-alive storage.get sequential ({codec})"))
                .zip(pipe)
                .map(|(a, b)| a / b);
            self.ratio(
                format!("kept-alive sequential call ({codec}) / pipe round trip"),
                v,
                "≤ 3",
                |r| r <= 3.0,
            );
            let v = self.figure_value(&format!("kept-alive calls/s, 64 in flight ({codec})"));
            self.ratio(
                format!("kept-alive calls/s, 64 in flight ({codec}) / 150k"),
                v.map(|v| v / 150_000.0),
                "≥ 1",
                |r| r >= 1.0,
            );
        }
        let pinned = self
            .median("short-lived storage.get (bincode, pinned sha256)")
            .zip(self.median("short-lived storage.get (bincode)"))
            .map(|(a, b)| a / b);
        self.ratio(
            "short-lived storage.get, pinned / unpinned (bincode)",
            pinned,
            "≤ 1.1",
            |r| r <= 1.1,
        );
        let batch = self
            .median("resolve batch of 100 (bincode)")
            .zip(self.median("resolve batch of 1 (bincode)"))
            .map(|(a, b)| a / b);
        self.ratio(
            "resolve 100 secrets / resolve 1 (one process)",
            batch,
            "≤ 1.5",
            |r| r <= 1.5,
        );
        let base = self.median("spawn-to-handshake stowage-plugin-testkit");
        let static_base = self.median("spawn-to-handshake stowage-plugin-testkit (static)");
        let names: Vec<String> = self
            .series
            .iter()
            .filter_map(|s| {
                s.name
                    .strip_prefix("spawn-to-handshake ")
                    .map(str::to_owned)
            })
            .filter(|n| !n.starts_with("stowage-plugin-testkit"))
            .collect();
        let _ = static_base;
        for name in names {
            let v = self
                .median(&format!("spawn-to-handshake {name}"))
                .zip(base)
                .map(|(a, b)| a / b);
            self.ratio(
                format!("{name} spawn-to-handshake / testkit's"),
                v,
                "≤ 1.5",
                |r| r <= 1.5,
            );
            let rss = self.figure_value(&format!("{name} peak RSS at handshake"));
            self.ratio(
                format!("{name} idle RSS / 15 MiB"),
                rss.map(|r| r / 15.0),
                "≤ 1",
                |r| r <= 1.0,
            );
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "machine": machine(),
            "series": self.series.iter().map(|s| serde_json::json!({
                "name": s.name, "unit": "us", "n": s.samples_us.len(),
                "median": s.median(), "p90": s.percentile(90.0), "p99": s.percentile(99.0),
            })).collect::<Vec<_>>(),
            "figures": self.figures.iter().map(|f| serde_json::json!({"name": f.name, "value": f.value, "unit": f.unit})).collect::<Vec<_>>(),
            "ratios": self.ratios.iter().map(|r| serde_json::json!({"name": r.name, "value": r.value, "target": r.target, "met": r.met})).collect::<Vec<_>>(),
        })
    }

    pub fn to_markdown(&self) -> String {
        let mut s = format!(
            "Machine: {}\n\n| measurement | median µs | p90 µs | p99 µs |\n|---|---:|---:|---:|\n",
            machine()
        );
        for x in &self.series {
            s.push_str(&format!(
                "| {} | {:.1} | {:.1} | {:.1} |\n",
                x.name,
                x.median(),
                x.percentile(90.0),
                x.percentile(99.0)
            ));
        }
        s.push_str("\n| figure | value |\n|---|---:|\n");
        for f in &self.figures {
            s.push_str(&format!("| {} | {:.1} {} |\n", f.name, f.value, f.unit));
        }
        s.push_str("\n| ratio (same run) | value | target | met |\n|---|---:|---|---|\n");
        for r in &self.ratios {
            let met = match r.met {
                Some(true) if r.target != "(reported)" => "yes",
                Some(false) => "**no**",
                _ => "-",
            };
            s.push_str(&format!(
                "| {} | {:.2} | {} | {met} |\n",
                r.name, r.value, r.target
            ));
        }
        s
    }
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    format!("{cpus} CPUs, {model}")
}
