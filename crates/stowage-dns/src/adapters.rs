//! [`Resolver`] as the DNS resolver of each HTTP client the binaries use.

use crate::Resolver;

#[cfg(feature = "reqwest")]
impl reqwest::dns::Resolve for Resolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let resolver = self.clone();
        Box::pin(async move {
            let ips = resolver.lookup(name.as_str()).await?;
            let addrs: reqwest::dns::Addrs =
                Box::new(ips.into_iter().map(|ip| std::net::SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

#[cfg(feature = "object-store")]
impl object_store::client::DnsResolver for Resolver {
    fn resolve(&self, host: &str) -> object_store::client::DnsFuture {
        let resolver = self.clone();
        let host = host.to_owned();
        Box::pin(async move {
            resolver
                .lookup(&host)
                .await
                .map_err(|e| Box::new(e) as object_store::client::DnsError)
        })
    }
}

#[cfg(feature = "aws")]
impl aws_smithy_runtime_api::client::dns::ResolveDns for Resolver {
    fn resolve_dns<'a>(
        &'a self,
        name: &'a str,
    ) -> aws_smithy_runtime_api::client::dns::DnsFuture<'a> {
        aws_smithy_runtime_api::client::dns::DnsFuture::new(async move {
            self.lookup(name)
                .await
                .map_err(aws_smithy_runtime_api::client::dns::ResolveDnsError::new)
        })
    }
}
