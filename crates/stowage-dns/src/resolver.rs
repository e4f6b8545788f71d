//! The resolver: hickory-resolver on the system's configuration, built once per process.

use std::fmt;
use std::net::IpAddr;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, OnceLock};

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ResolveHosts, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;

/// Resolves host names from `/etc/hosts` and the name servers of `/etc/resolv.conf` (its
/// `search`, `ndots`, `timeout` and `attempts` options included), without glibc's NSS.
/// `localhost` always resolves to the loopback addresses. Answers are cached for their TTL,
/// shared by every clone.
#[derive(Clone, Default)]
pub struct Resolver {
    // Unwind-safe (object_store's `DnsResolver` requires it): the state is a name cache and
    // hickory's connection pool; a panic during a lookup leaves at worst a missing entry,
    // and hickory's locks do not poison.
    state: Arc<OnceLock<AssertUnwindSafe<State>>>,
}

struct State {
    resolver: TokioResolver,
    /// Why `/etc/resolv.conf` could not be used, when it could not: only `/etc/hosts` and
    /// `localhost` resolve then, and failures say why.
    no_name_servers: Option<String>,
}

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Resolver(/etc/resolv.conf, /etc/hosts)")
    }
}

/// A host name that did not resolve, with the reason.
#[derive(Debug)]
pub struct ResolveError {
    host: String,
    reason: String,
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot resolve host name {:?}: {}",
            self.host, self.reason
        )
    }
}

impl std::error::Error for ResolveError {}

impl Resolver {
    /// The process-wide resolver (one cache for every HTTP client of the process).
    ///
    /// Its name server connections run as tasks of the tokio runtime of the first lookup, as
    /// a plugin's single runtime; a program that resolves names from several runtimes in
    /// turn should give each its own [`Resolver::default`].
    pub fn system() -> Resolver {
        static SYSTEM: OnceLock<Resolver> = OnceLock::new();
        SYSTEM.get_or_init(Resolver::default).clone()
    }

    fn state(&self) -> &State {
        let state = self.state.get_or_init(|| {
            let (builder, no_name_servers) = match TokioResolver::builder_tokio() {
                Ok(b) => (b, None),
                Err(e) => (
                    TokioResolver::builder_with_config(
                        ResolverConfig::from_parts(None, Vec::new(), Vec::new()),
                        TokioRuntimeProvider::default(),
                    ),
                    Some(format!(
                        "/etc/resolv.conf cannot be used ({e}), so only names in /etc/hosts \
                         and localhost resolve"
                    )),
                ),
            };
            let mut builder = builder;
            // /etc/hosts first, as glibc's `hosts: files dns`.
            builder.options_mut().use_hosts_file = ResolveHosts::Always;
            let resolver = builder.build().unwrap_or_else(|_| {
                // Only a configuration asking for unavailable features fails to build; the
                // empty one never does.
                TokioResolver::builder_with_config(
                    ResolverConfig::from_parts(None, Vec::new(), Vec::new()),
                    TokioRuntimeProvider::default(),
                )
                .build()
                .expect("an empty resolver configuration builds")
            });
            AssertUnwindSafe(State {
                resolver,
                no_name_servers,
            })
        });
        &state.0
    }

    /// The addresses of `host` (an IP address literal is returned as is). Must run inside a
    /// tokio runtime.
    pub async fn lookup(&self, host: &str) -> Result<Vec<IpAddr>, ResolveError> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Ok(vec![ip]);
        }
        let state = self.state();
        let fail = |reason: String| ResolveError {
            host: host.to_owned(),
            reason: match &state.no_name_servers {
                Some(why) => format!("{reason}; {why}"),
                None => reason,
            },
        };
        let answer = state
            .resolver
            .lookup_ip(host)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let ips: Vec<IpAddr> = answer.iter().collect();
        if ips.is_empty() {
            return Err(fail("no address records".into()));
        }
        Ok(ips)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn localhost_resolves_to_loopback() {
        let ips = Resolver::system().lookup("localhost").await.unwrap();
        assert!(!ips.is_empty());
        assert!(ips.iter().all(IpAddr::is_loopback), "{ips:?}");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn ip_literals_are_returned_as_they_are() {
        let r = Resolver::default();
        assert_eq!(
            r.lookup("127.0.0.1").await.unwrap(),
            vec![IpAddr::from([127, 0, 0, 1])]
        );
        assert_eq!(
            r.lookup("[::1]").await.unwrap(),
            vec!["::1".parse::<IpAddr>().unwrap()]
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_name_that_cannot_exist_fails_with_the_name() {
        // `.invalid` never resolves (RFC 6761), whatever the name servers.
        let e = Resolver::default()
            .lookup("no-such-host.invalid")
            .await
            .unwrap_err();
        assert!(e.to_string().contains("no-such-host.invalid"), "{e}");
    }
}
