//! `stowage-bench`: measures Stowage's plugin call path side by side with the physical
//! floor (spawning a no-op static binary, a pipe round trip between two processes), in one
//! run, and reports medians, p90, p99 and ratios. Run it through `cargo xtask bench`, which
//! builds everything in release mode first. Benchmarks never assert: they report.

mod build;
mod cli_path;
mod floors;
mod measure;
mod plugin_calls;
mod porter;
mod scale;
mod startup;

use std::path::PathBuf;

use measure::Report;

struct Args {
    bin_dir: PathBuf,
    out_dir: PathBuf,
    quick: bool,
    /// Run only these sections (calls, startup, cli, porter, scale, build); all when empty.
    only: Vec<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut bin_dir = None;
    let mut out_dir = None;
    let mut quick = false;
    let mut only = Vec::new();
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--bin-dir" => bin_dir = it.next().map(PathBuf::from),
            "--out-dir" => out_dir = it.next().map(PathBuf::from),
            "--quick" => quick = true,
            "--only" => only.extend(
                it.next()
                    .map(|s| s.split(',').map(str::to_owned).collect::<Vec<_>>())
                    .unwrap_or_default(),
            ),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(PathBuf::from))
        .unwrap_or_default();
    let bin_dir = bin_dir.unwrap_or_else(|| exe_dir.clone());
    // Absolute, because configs written from it are resolved relative to their own file.
    let bin_dir =
        std::fs::canonicalize(&bin_dir).map_err(|e| format!("{}: {e}", bin_dir.display()))?;
    Ok(Args {
        bin_dir,
        out_dir: out_dir.unwrap_or_else(|| exe_dir.join("../bench")),
        quick,
        only,
    })
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!(
                "stowage-bench: {e}\nusage: stowage-bench [--bin-dir DIR] [--out-dir DIR] [--quick] [--only calls,startup,cli,porter,scale,build]"
            );
            std::process::exit(2);
        }
    };
    std::fs::create_dir_all(&args.out_dir).expect("create the output directory");
    let scale = if args.quick { 5 } else { 1 };
    let mut report = Report::default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");

    let wanted = |section: &str| args.only.is_empty() || args.only.iter().any(|o| o == section);
    // The floors always run: every ratio is against them.
    eprintln!("== 1. floors");
    let floors = floors::run(&args.out_dir, scale, &mut report);
    if wanted("calls") {
        eprintln!("== 2-4. plugin calls through the host library");
        runtime.block_on(plugin_calls::run(&args.bin_dir, scale, &mut report));
    }
    if wanted("startup") {
        eprintln!("== 5. plugin start-up and memory");
        startup::run(&args.bin_dir, scale, &mut report);
        startup::startup_breakdown(&args.bin_dir, &args.out_dir, scale, &mut report);
    }
    if wanted("cli") {
        eprintln!("== 6. the CLI end to end, with and without the agent");
        cli_path::run(&args.bin_dir, scale, &mut report);
    }

    if wanted("porter") {
        eprintln!("== 7. Porter's plugins, both ways");
        runtime.block_on(porter::run(
            &args.bin_dir,
            &args.out_dir,
            scale,
            &mut report,
        ));
    }

    if wanted("scale") {
        eprintln!("== 8. stores that grow, and 1,000-secret batches");
        runtime.block_on(scale::run(&args.bin_dir, scale, &mut report));
    }
    if wanted("build") {
        eprintln!("== 9. the default (static where safe) build against the dynamic one");
        let spawn = report.median(&floors.spawn);
        runtime.block_on(build::run(&args.bin_dir, scale, spawn, &mut report));
    }

    report.ratios(&floors);
    let (spawn, pipe) = (report.median(&floors.spawn), report.median(&floors.pipe));
    porter::ratios(&mut report, spawn, pipe);
    cli_path::ratios(&mut report, spawn);
    let json = report.to_json();
    let json_path = args.out_dir.join("results.json");
    std::fs::write(&json_path, serde_json::to_string_pretty(&json).unwrap())
        .expect("write results.json");
    let table = report.to_markdown();
    std::fs::write(args.out_dir.join("results.md"), &table).expect("write results.md");
    println!("{table}");
    eprintln!(
        "results: {} and {}",
        json_path.display(),
        args.out_dir.join("results.md").display()
    );
}
