//! `stowage-test-lease-holder LOG HOLD_MS`: the command the lease tests run under
//! `stowage lock run`. It holds for HOLD_MS and then appends one line to LOG:
//! `<STOWAGE_LEASE_TOKEN> <start> <end>`, both read from CLOCK_MONOTONIC in nanoseconds
//! (one clock for every process of the machine, unlike `date`, which can jump).

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

fn monotonic_ns() -> u128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime fills the struct we hand it.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u128 * 1_000_000_000 + ts.tv_nsec as u128
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(log), Some(hold_ms)) = (args.first(), args.get(1).and_then(|a| a.parse().ok()))
    else {
        eprintln!("usage: stowage-test-lease-holder LOG HOLD_MS");
        return ExitCode::from(2);
    };
    let token = std::env::var("STOWAGE_LEASE_TOKEN").unwrap_or_default();
    let start = monotonic_ns();
    std::thread::sleep(Duration::from_millis(hold_ms));
    let end = monotonic_ns();
    // One write of one short line with O_APPEND: lines of concurrent writers never mix.
    let line = format!("{token} {start} {end}\n");
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .and_then(|mut f| f.write_all(line.as_bytes()));
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cannot append to {log}: {e}");
            ExitCode::FAILURE
        }
    }
}
