//! `stowage-plugin-testkit`: a small real plugin, built with the SDK, for trying Stowage
//! and for the lifecycle tests.
//!
//! It serves storage and secrets either in memory (config without `root`; contents live
//! as long as the process, so only useful with `keep-alive`) or on disk (config `root`),
//! reusing the host's built-in filesystem backends through the plugin SDK.
//!
//! Faults for tests, chosen by argument (before the handshake) or by config `fault`:
//! - `--fault exit-before-handshake | garbage-handshake | wrong-version | garbage-frames | slow-start`
//!   `| wrong-answer | exit-after-handshake | close-stdin | wrong-id | huge-frame`
//!   `| stdout-flood | truncated-frame | truncated-header`
//! - `--codec json|bincode`
//! - config `fault = "crash-on-call" | "hang-on-call" | "block-on-call" | "stdout-noise" |
//!   "ignore-eof" | "stderr-flood" | "stderr-forever" | "leave-grandchild" | "setsid-daemon"`
//! - config `read-only = true`: secrets with only `secrets.resolve`, storage with only `storage.get`.
//! - config `pid-file = PATH`: the plugin appends its pid there when configured, and the pid
//!   of the grandchild it starts when it hangs, so tests can check that both are gone.
//! - config `env-file = PATH`: the plugin writes there its whole environment, one sorted
//!   `NAME=VALUE` line per variable (what the host gave it: `STOWAGE_HOME`, …, and what
//!   it inherited).
//! - config `crash-echo-env = VAR`: with `fault = "crash-on-call"`, the plugin writes the
//!   value of `$VAR` to stderr before crashing (a plugin that leaks its credential).
//! - config `calls-file = PATH`: every secrets `resolve` call appends `resolve N` (N keys)
//!   there, so tests can count batch calls.
//! - config `barrier-mark = PATH` and `barrier-wait = PATH`: a secrets `resolve` creates
//!   the first file, then waits for the second to exist before answering (failing with
//!   `unavailable` after 20 s). Two backends waiting for each other's mark prove that the
//!   host calls them at the same time, with no timing in the assertion.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use stowage_host::builtin::{FilesystemSecrets, FilesystemStorage};
use stowage_plugin::{
    Bytes, Capability, Codec, CountQuery, Document, DocumentKey, DocumentMeta, ListPage, ListQuery,
    Plugin, PluginConfig, PluginError, Precondition, SecretBytes, SecretListQuery, SecretMeta,
    SecretPage, SecretRef, Secrets, Storage, async_trait, paging, versions,
};

/// What `crash-echo-env` names, printed to stderr by a crash.
static CRASH_ECHO: std::sync::OnceLock<String> = std::sync::OnceLock::new();

#[derive(Clone, Copy, PartialEq, Eq)]
enum CallFault {
    None,
    Crash,
    Hang,
    Block,
    StdoutNoise,
    StderrFlood,
    StderrForever,
    LeaveGrandchild,
    SetsidDaemon,
}

fn call_fault(config: &PluginConfig) -> Result<CallFault, PluginError> {
    if let Some(path) = config.get_str("env-file") {
        // The whole environment, for the tests that check what the host passes on.
        let mut vars: Vec<String> = std::env::vars_os()
            .map(|(k, v)| format!("{}={}\n", k.to_string_lossy(), v.to_string_lossy()))
            .collect();
        vars.sort();
        let _ = std::fs::write(path, vars.concat());
    }
    if let Some(var) = config.get_str("crash-echo-env") {
        let _ = CRASH_ECHO.set(std::env::var(var).unwrap_or_default());
    }
    if let Some(path) = config.get_str("pid-file") {
        PID_FILE.get_or_init(|| path.to_owned());
        note_pid(std::process::id());
    }
    match config.get_str("fault") {
        None | Some("ignore-eof") => Ok(CallFault::None),
        Some("crash-on-call") => Ok(CallFault::Crash),
        Some("hang-on-call") => Ok(CallFault::Hang),
        Some("block-on-call") => Ok(CallFault::Block),
        Some("stdout-noise") => Ok(CallFault::StdoutNoise),
        Some("stderr-flood") => Ok(CallFault::StderrFlood),
        Some("stderr-forever") => Ok(CallFault::StderrForever),
        Some("leave-grandchild") => Ok(CallFault::LeaveGrandchild),
        Some("setsid-daemon") => Ok(CallFault::SetsidDaemon),
        Some(other) => Err(PluginError::invalid_argument(format!(
            "unknown fault {other:?}"
        ))),
    }
}

fn read_only(config: &PluginConfig) -> bool {
    config
        .values
        .get("read-only")
        .and_then(|v| v.as_bool())
        .unwrap_or(false)
}

async fn inject(fault: CallFault) {
    match fault {
        CallFault::None => {}
        CallFault::Crash => {
            if let Some(value) = CRASH_ECHO.get() {
                eprintln!("testkit: my credential is {value}");
                eprintln!("{{\"level\":\"error\",\"message\":\"auth failed with {value}\"}}");
            }
            eprintln!("testkit: about to crash on purpose");
            std::process::exit(101);
        }
        CallFault::Hang => {
            // A grandchild in the same process group: a deadline kill must take it too.
            if let Ok(child) = std::process::Command::new("sleep").arg("300").spawn() {
                eprintln!("testkit: hanging; grandchild pid {}", child.id());
                note_pid(child.id());
            }
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        CallFault::Block => {
            // Blocks the runtime's only thread, as a careless blocking call would.
            if let Ok(child) = std::process::Command::new("sleep").arg("300").spawn() {
                note_pid(child.id());
            }
            std::thread::sleep(Duration::from_secs(3600));
        }
        CallFault::StderrFlood => {
            // 200 MB of stderr without a single newline, then a normal answer.
            let chunk = vec![b'x'; 1 << 20];
            let mut err = std::io::stderr().lock();
            for _ in 0..200 {
                if err.write_all(&chunk).is_err() {
                    break;
                }
            }
            let _ = err.write_all(b"\ntestkit: flood over\n");
        }
        CallFault::StderrForever => {
            // Log lines without end, and never an answer: only the deadline stops it.
            let mut err = std::io::stderr().lock();
            while err
                .write_all(b"testkit: still thinking about it, please wait\n")
                .is_ok()
            {}
            std::thread::sleep(Duration::from_secs(3600));
        }
        CallFault::LeaveGrandchild => {
            // A helper left running in the plugin's process group, then a normal answer
            // (and a normal exit on EOF).
            if let Ok(child) = std::process::Command::new("sleep")
                .arg("300")
                .stdin(std::process::Stdio::null())
                .spawn()
            {
                note_pid(child.id());
            }
        }
        CallFault::SetsidDaemon => {
            // A daemon in a session (and process group) of its own: out of the host's reach.
            if let Ok(child) = std::process::Command::new("setsid")
                .args(["sleep", "300"])
                .stdin(std::process::Stdio::null())
                .spawn()
            {
                note_pid(child.id());
                // Answer only once it has left our group, so that what the host does
                // next meets a daemon that has really escaped (bounded: 10 s).
                // SAFETY: getpgid reads another process's group id.
                let own = unsafe { libc::getpgid(0) };
                for _ in 0..1000 {
                    if unsafe { libc::getpgid(child.id() as i32) } != own {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
        CallFault::StdoutNoise => {
            println!("a chatty library printing to stdout");
            std::io::stdout().flush().ok();
        }
    }
}

static PID_FILE: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Appends a pid to the config's `pid-file`, if one was named.
fn note_pid(pid: u32) {
    if let Some(path) = PID_FILE.get()
        && let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
    {
        let _ = writeln!(f, "{pid}");
    }
}

/// (collection, group, name).
type DocKey = (String, String, String);

/// In-memory documents: key → (version, value).
#[derive(Default)]
struct MemoryStorage {
    docs: Mutex<BTreeMap<DocKey, (String, Vec<u8>)>>,
}

/// A version never issued before: a counter shared by every document of the process (so a
/// re-created document does not start over), and the process's random tag (so a new
/// process, whose store starts empty, does not repeat an earlier process's versions).
fn next_version() -> String {
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let n = WRITES.fetch_add(1, Ordering::Relaxed) + 1;
    format!("{n}-{}", versions::process_tag())
}

#[async_trait]
impl Storage for MemoryStorage {
    async fn get(&self, key: &DocumentKey) -> Result<Document, PluginError> {
        let docs = self.docs.lock().unwrap();
        docs.get(&(key.collection.clone(), key.group.clone(), key.name.clone()))
            .map(|(v, value)| Document {
                value: Bytes(value.clone()),
                version: v.clone(),
            })
            .ok_or_else(|| PluginError::not_found(format!("document {key} not found")))
    }

    async fn put(
        &self,
        key: &DocumentKey,
        value: Bytes,
        pre: Precondition,
    ) -> Result<String, PluginError> {
        let mut docs = self.docs.lock().unwrap();
        let k = (key.collection.clone(), key.group.clone(), key.name.clone());
        let current = docs.get(&k).map(|(v, _)| v.as_str());
        pre.check(current, &format!("document {key}"))?;
        let version = next_version();
        docs.insert(k, (version.clone(), value.into_vec()));
        Ok(version)
    }

    async fn delete(&self, key: &DocumentKey, pre: Precondition) -> Result<(), PluginError> {
        let mut docs = self.docs.lock().unwrap();
        let k = (key.collection.clone(), key.group.clone(), key.name.clone());
        let what = format!("document {key}");
        let Some((v, _)) = docs.get(&k) else {
            // A version precondition on a missing document is a conflict, not a not_found.
            pre.check(None, &what)?;
            return Err(PluginError::not_found(format!("{what} not found")));
        };
        pre.check(Some(v), &what)?;
        docs.remove(&k);
        Ok(())
    }

    async fn list(&self, q: &ListQuery) -> Result<ListPage, PluginError> {
        let docs = self.docs.lock().unwrap();
        // Keys sort by collection, then group, then name: one group's names are in order.
        let group = docs
            .iter()
            .filter(|((c, g, _), _)| *c == q.collection && *g == q.group)
            .map(|((_, _, n), (v, value))| DocumentMeta {
                name: n.clone(),
                version: v.clone(),
                size: value.len() as u64,
            });
        let page = paging::page(group, &q.prefix, q.page_token.as_deref(), q.page_size)?;
        Ok(ListPage {
            items: page.items,
            next_page_token: page.next_page_token,
        })
    }

    async fn count(&self, q: &CountQuery) -> Result<u64, PluginError> {
        let docs = self.docs.lock().unwrap();
        Ok(docs
            .keys()
            .filter(|(c, g, n)| *c == q.collection && *g == q.group && n.starts_with(&q.prefix))
            .count() as u64)
    }
}

/// In-memory secrets, with every version kept (versions are 1, 2, 3, …).
#[derive(Default)]
struct MemorySecrets {
    values: Mutex<BTreeMap<String, Vec<Vec<u8>>>>,
}

impl MemorySecrets {
    fn lookup(
        values: &BTreeMap<String, Vec<Vec<u8>>>,
        r: &SecretRef,
    ) -> Result<SecretBytes, PluginError> {
        let versions = values
            .get(&r.key)
            .ok_or_else(|| PluginError::not_found(format!("secret '{}' not found", r.key)))?;
        let index = match &r.version {
            None => versions.len(),
            Some(v) => v
                .parse::<usize>()
                .map_err(|_| PluginError::not_found(format!("no version {v}")))?,
        };
        versions
            .get(index.wrapping_sub(1))
            .map(|v| SecretBytes::new(v.clone()))
            .ok_or_else(|| {
                PluginError::not_found(format!("secret '{}' has no version {index}", r.key))
            })
    }
}

#[async_trait]
impl Secrets for MemorySecrets {
    async fn resolve_one(&self, r: &SecretRef) -> Result<SecretBytes, PluginError> {
        Self::lookup(&self.values.lock().unwrap(), r)
    }

    /// A batch takes the lock once, as a backend with a batch API would make one request.
    async fn resolve(&self, refs: &[SecretRef]) -> Vec<Result<SecretBytes, PluginError>> {
        let values = self.values.lock().unwrap();
        refs.iter().map(|r| Self::lookup(&values, r)).collect()
    }

    async fn put(&self, key: &str, value: SecretBytes) -> Result<Option<String>, PluginError> {
        let mut values = self.values.lock().unwrap();
        let versions = values.entry(key.to_owned()).or_default();
        versions.push(value.expose().to_vec());
        Ok(Some(versions.len().to_string()))
    }

    async fn delete(&self, key: &str) -> Result<(), PluginError> {
        self.values
            .lock()
            .unwrap()
            .remove(key)
            .map(|_| ())
            .ok_or_else(|| PluginError::not_found(format!("secret '{key}' not found")))
    }

    async fn list(&self, q: &SecretListQuery) -> Result<SecretPage, PluginError> {
        let values = self.values.lock().unwrap();
        let all = values.iter().map(|(k, v)| SecretMeta {
            key: k.clone(),
            version: Some(v.len().to_string()),
        });
        let page = paging::page(all, &q.prefix, q.page_token.as_deref(), q.page_size)?;
        Ok(SecretPage {
            items: page.items,
            next_page_token: page.next_page_token,
        })
    }
}

/// Wraps a backend with a fault and an optional read-only capability set.
struct Faulty<T: ?Sized> {
    inner: Arc<T>,
    fault: CallFault,
    read_only: bool,
    /// Config `calls-file`.
    calls_file: Option<String>,
    /// Config `barrier-mark` and `barrier-wait`.
    barrier: Option<(String, String)>,
}

impl<T: ?Sized> Faulty<T> {
    fn new(inner: Arc<T>, config: &PluginConfig) -> Result<Self, PluginError> {
        let text = |key: &str| config.get_str(key).map(str::to_owned);
        Ok(Faulty {
            inner,
            fault: call_fault(config)?,
            read_only: read_only(config),
            calls_file: text("calls-file"),
            barrier: text("barrier-mark").zip(text("barrier-wait")),
        })
    }

    /// Notes a resolve call of `n` keys, and meets the barrier, if configured.
    async fn before_resolve(&self, n: usize) -> Result<(), PluginError> {
        if let Some(path) = &self.calls_file
            && let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
        {
            let _ = writeln!(f, "resolve {n}");
        }
        let Some((mark, wait)) = &self.barrier else {
            return Ok(());
        };
        std::fs::write(mark, b"").map_err(|e| PluginError::internal(format!("{mark}: {e}")))?;
        let start = std::time::Instant::now();
        while !std::path::Path::new(wait).exists() {
            if start.elapsed() > Duration::from_secs(20) {
                return Err(PluginError::unavailable(format!(
                    "barrier: {wait} never appeared (the other backend was not called meanwhile)"
                )));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(())
    }
}

#[async_trait]
impl Storage for Faulty<dyn Storage> {
    fn capabilities(&self) -> Vec<Capability> {
        if self.read_only {
            vec![Capability::StorageGet]
        } else {
            self.inner.capabilities()
        }
    }
    async fn get(&self, key: &DocumentKey) -> Result<Document, PluginError> {
        inject(self.fault).await;
        self.inner.get(key).await
    }
    async fn put(
        &self,
        key: &DocumentKey,
        value: Bytes,
        pre: Precondition,
    ) -> Result<String, PluginError> {
        inject(self.fault).await;
        self.inner.put(key, value, pre).await
    }
    async fn delete(&self, key: &DocumentKey, pre: Precondition) -> Result<(), PluginError> {
        inject(self.fault).await;
        self.inner.delete(key, pre).await
    }
    async fn list(&self, q: &ListQuery) -> Result<ListPage, PluginError> {
        inject(self.fault).await;
        self.inner.list(q).await
    }
    async fn count(&self, q: &CountQuery) -> Result<u64, PluginError> {
        inject(self.fault).await;
        self.inner.count(q).await
    }
}

#[async_trait]
impl Secrets for Faulty<dyn Secrets> {
    fn capabilities(&self) -> Vec<Capability> {
        if self.read_only {
            vec![Capability::SecretsResolve]
        } else {
            self.inner.capabilities()
        }
    }
    async fn resolve_one(&self, r: &SecretRef) -> Result<SecretBytes, PluginError> {
        self.inner.resolve_one(r).await
    }
    async fn resolve(&self, refs: &[SecretRef]) -> Vec<Result<SecretBytes, PluginError>> {
        inject(self.fault).await;
        if let Err(e) = self.before_resolve(refs.len()).await {
            return refs.iter().map(|_| Err(e.clone())).collect();
        }
        self.inner.resolve(refs).await
    }
    async fn put(&self, key: &str, value: SecretBytes) -> Result<Option<String>, PluginError> {
        inject(self.fault).await;
        self.inner.put(key, value).await
    }
    async fn delete(&self, key: &str) -> Result<(), PluginError> {
        inject(self.fault).await;
        self.inner.delete(key).await
    }
    async fn list(&self, q: &SecretListQuery) -> Result<SecretPage, PluginError> {
        inject(self.fault).await;
        self.inner.list(q).await
    }
}

fn ignore_eof(config: &PluginConfig) {
    if config.get_str("fault") == Some("ignore-eof") {
        // Keeps the process alive after the protocol ends (see `main`), so the host's
        // grace-period kill is what ends it.
        IGNORE_EOF.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

static IGNORE_EOF: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn raw_fault(fault: &str) -> Option<ExitCode> {
    let host_started = std::env::var(stowage_plugin::protocol::handshake::COOKIE_ENV).is_ok();
    if !host_started {
        return None;
    }
    let mut out = std::io::stdout();
    match fault {
        "exit-before-handshake" => {
            eprintln!("testkit: cannot open /nonexistent/credentials (on purpose)");
            Some(ExitCode::from(7))
        }
        "garbage-handshake" => {
            let _ = out.write_all(b"Hello! I am not a plugin.\n");
            let _ = out.flush();
            std::thread::sleep(Duration::from_millis(200));
            Some(ExitCode::from(0))
        }
        "wrong-version" => {
            let _ = out.write_all(b"stowage-plugin 99 json\n");
            let _ = out.flush();
            Some(ExitCode::from(0))
        }
        "garbage-frames" => {
            let _ = out.write_all(b"stowage-plugin 1 bincode\n");
            let _ = out.write_all(&[0, 0, 0, 5, 0xde, 0xad, 0xbe, 0xef, 0x00]);
            let _ = out.flush();
            eprintln!("testkit: wrote a garbage frame");
            // Keep stdin open like a confused plugin would.
            std::thread::sleep(Duration::from_secs(5));
            Some(ExitCode::from(0))
        }
        "wrong-answer" => {
            // Answers every request with a `describe` response, whatever was asked.
            use std::io::Read as _;
            use stowage_plugin::protocol::service::{
                StowagePluginRequest as Req, StowagePluginResponse as Resp,
            };
            let _ = out.write_all(b"stowage-plugin 1 bincode\n");
            let _ = out.flush();
            let mut input = std::io::stdin().lock();
            loop {
                let mut len = [0u8; 4];
                if input.read_exact(&mut len).is_err() {
                    return Some(ExitCode::from(0));
                }
                let mut payload = vec![0u8; u32::from_be_bytes(len) as usize];
                if input.read_exact(&mut payload).is_err() {
                    return Some(ExitCode::from(1));
                }
                let Ok(tarpc_msg) = Codec::Bincode
                    .decode::<stowage_plugin::protocol::tarpc::ClientMessage<Req>>(&payload)
                else {
                    return Some(ExitCode::from(1));
                };
                if let stowage_plugin::protocol::tarpc::ClientMessage::Request(request) = tarpc_msg
                {
                    let info = stowage_plugin::protocol::PluginInfo {
                        name: "testkit".into(),
                        version: "0".into(),
                        protocol_version: 1,
                        capabilities: vec!["storage.get".into()],
                    };
                    let response = stowage_plugin::protocol::tarpc::Response {
                        request_id: request.id,
                        message: Ok(Resp::Describe(Ok(info))),
                    };
                    let bytes = Codec::Bincode.encode(&response).unwrap_or_default();
                    let _ = out.write_all(&(bytes.len() as u32).to_be_bytes());
                    let _ = out.write_all(&bytes);
                    let _ = out.flush();
                }
            }
        }
        "exit-after-handshake" => {
            let _ = out.write_all(b"stowage-plugin 1 bincode\n");
            let _ = out.flush();
            eprintln!("testkit: leaving right after the handshake");
            Some(ExitCode::from(0))
        }
        "close-stdin" => {
            // Closes the pipe the host writes to, then hands over and stays alive: the
            // host's first write fails with EPIPE.
            // SAFETY: closing our own stdin descriptor.
            unsafe {
                libc::close(0);
            }
            let _ = out.write_all(b"stowage-plugin 1 bincode\n");
            let _ = out.flush();
            eprintln!("testkit: closed stdin");
            std::thread::sleep(Duration::from_secs(60));
            Some(ExitCode::from(0))
        }
        "wrong-id" => {
            // Answers every request correctly, but under another request's id.
            serve_raw(&mut out, |id| id + 1000, |_| None);
            Some(ExitCode::from(0))
        }
        "huge-frame" => {
            // Configures properly, then answers the first call with a frame above the
            // 16 MiB limit, and exits as soon as the host hangs up.
            serve_raw(&mut out, |id| id, |n| (n > 0).then(|| vec![0u8; 20 << 20]));
            Some(ExitCode::from(0))
        }
        "stdout-flood" => {
            // Bytes on stdout without end: a frame header of the largest allowed length,
            // then filler, until the host stops reading.
            let _ = out.write_all(b"stowage-plugin 1 bincode\n");
            let _ = out.write_all(&(stowage_plugin::protocol::MAX_FRAME_LEN as u32).to_be_bytes());
            let chunk = vec![b'x'; 1 << 16];
            while out.write_all(&chunk).is_ok() {}
            Some(ExitCode::from(0))
        }
        "truncated-frame" | "truncated-header" => {
            // Announces a 64-byte answer to the first request, sends 10 bytes of it (or
            // none), and exits.
            use std::io::Read as _;
            let _ = out.write_all(b"stowage-plugin 1 bincode\n");
            let _ = out.flush();
            let mut len = [0u8; 4];
            if std::io::stdin().lock().read_exact(&mut len).is_ok() {
                let _ = out.write_all(&64u32.to_be_bytes());
                if fault == "truncated-frame" {
                    let _ = out.write_all(&[0u8; 10]);
                }
                let _ = out.flush();
            }
            eprintln!("testkit: sent a truncated frame");
            Some(ExitCode::from(0))
        }
        "slow-start" => {
            std::thread::sleep(Duration::from_secs(60));
            Some(ExitCode::from(0))
        }
        _ => None,
    }
}

/// A hand-rolled bincode plugin for faults the SDK would never commit: answers the
/// configure request (and any other) with plugin info, under the id `id_of` gives it; the
/// n-th answer's payload is replaced by `raw(n)` when that is `Some`.
fn serve_raw(
    out: &mut std::io::Stdout,
    id_of: impl Fn(u64) -> u64,
    raw: impl Fn(usize) -> Option<Vec<u8>>,
) {
    use std::io::Read as _;
    use stowage_plugin::protocol::service::{
        StowagePluginRequest as Req, StowagePluginResponse as Resp,
    };
    let _ = out.write_all(b"stowage-plugin 1 bincode\n");
    let _ = out.flush();
    let mut input = std::io::stdin().lock();
    for n in 0.. {
        let mut len = [0u8; 4];
        if input.read_exact(&mut len).is_err() {
            return;
        }
        let mut payload = vec![0u8; u32::from_be_bytes(len) as usize];
        if input.read_exact(&mut payload).is_err() {
            return;
        }
        let Ok(stowage_plugin::protocol::tarpc::ClientMessage::Request(request)) =
            Codec::Bincode.decode::<stowage_plugin::protocol::tarpc::ClientMessage<Req>>(&payload)
        else {
            continue;
        };
        let info = stowage_plugin::protocol::PluginInfo {
            name: "testkit".into(),
            version: "0".into(),
            protocol_version: 1,
            capabilities: vec!["storage.get".into(), "secrets.resolve".into()],
        };
        let response = stowage_plugin::protocol::tarpc::Response {
            request_id: id_of(request.id),
            message: Ok(Resp::Configure(Ok(info))),
        };
        let bytes = raw(n).unwrap_or_else(|| Codec::Bincode.encode(&response).unwrap_or_default());
        let _ = out.write_all(&(bytes.len() as u32).to_be_bytes());
        let _ = out.write_all(&bytes);
        let _ = out.flush();
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    if let Some(fault) = arg("--fault")
        && let Some(code) = raw_fault(&fault)
    {
        return code;
    }
    let codec = match arg("--codec").as_deref() {
        Some("json") => Codec::Json,
        _ => Codec::Bincode,
    };
    let code = Plugin::new("testkit", env!("CARGO_PKG_VERSION"))
        // The config keys that hold credentials, for hosts that show a config.
        .sensitive_config_keys([] as [&str; 0])
        .codec(codec)
        .about(
            "Serves storage and secrets in memory, or on disk under config `root`. \
             Used by Stowage's own tests and demo.",
        )
        .storage(|config: &PluginConfig| {
            ignore_eof(config);
            let inner: Arc<dyn Storage> = match config.get_str("root") {
                Some(root) => Arc::new(FilesystemStorage::new(format!("{root}/storage"))),
                None => Arc::new(MemoryStorage::default()),
            };
            Faulty::new(inner, config)
        })
        .secrets(|config: &PluginConfig| {
            ignore_eof(config);
            let inner: Arc<dyn Secrets> = match config.get_str("root") {
                Some(root) => Arc::new(FilesystemSecrets::new(format!("{root}/secrets"))),
                None => Arc::new(MemorySecrets::default()),
            };
            Faulty::new(inner, config)
        })
        .run();
    if IGNORE_EOF.load(std::sync::atomic::Ordering::SeqCst) {
        std::thread::sleep(Duration::from_secs(60));
    }
    code
}
