//! Opening the client WebSockets: the TCP connect from a chosen source address, then the
//! WebSocket handshake with small buffers.
//!
//! One source address offers one ephemeral port per connection to a given server address —
//! about 28k with Linux's default `ip_local_port_range` — so past that the harness spreads its
//! connections over several loopback addresses (all of 127.0.0.0/8 is local on Linux) by
//! binding each socket itself before connecting.

use anyhow::{Context, bail};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::http::Uri;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

pub type Ws = WebSocketStream<TcpStream>;

/// Longest a TCP connect plus WebSocket handshake may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Ports one source address may use, keeping a margin below the kernel's range for the HTTP
/// connections and sockets still in TIME_WAIT from earlier runs.
pub fn ports_per_source() -> usize {
    let (lo, hi) = crate::sys::ephemeral_port_range().unwrap_or((32768, 60999));
    ((hi.saturating_sub(lo) + 1) as usize * 9 / 10).max(1)
}

/// Picks the source address of each new connection, round-robin.
pub struct Dialer {
    sources: Vec<IpAddr>,
    next: AtomicUsize,
    config: WebSocketConfig,
}

impl Dialer {
    /// `explicit` comes from `--source-ips`; without it the harness uses as many loopback
    /// addresses as `connections` need when the server is on loopback, and the kernel's
    /// choice otherwise.
    pub fn new(
        explicit: &[IpAddr],
        server: SocketAddr,
        connections: usize,
    ) -> anyhow::Result<Dialer> {
        let per = ports_per_source();
        let needed = connections.div_ceil(per);
        let sources = if !explicit.is_empty() {
            if explicit.len() < needed {
                tracing::warn!(
                    "{connections} connections over {} source addresses: more than the ~{per} ports each offers",
                    explicit.len()
                );
            }
            explicit.to_vec()
        } else if needed <= 1 {
            Vec::new()
        } else if server.ip().is_loopback() && server.is_ipv4() {
            if needed > 254 {
                bail!("{connections} connections need more than 254 loopback source addresses");
            }
            (1..=needed as u8)
                .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, i)))
                .collect()
        } else {
            bail!(
                "{connections} connections to {server} exceed the ~{per} ephemeral ports of one \
                 source address; pass --source-ips with {needed} or more local addresses"
            );
        };
        if !sources.is_empty() {
            tracing::info!(
                "spreading connections over {} source addresses: {:?}",
                sources.len(),
                sources
            );
        }
        // The defaults eagerly allocate a 128 KiB read buffer per connection (6 GB for 50k
        // clients); room frames are small, so a 4 KiB buffer grows only when one is not.
        // Writes go out at once: every send is one small frame followed by a flush anyway.
        let config = WebSocketConfig::default()
            .read_buffer_size(4096)
            .write_buffer_size(0)
            .max_message_size(Some(16 << 20));
        Ok(Dialer {
            sources,
            next: AtomicUsize::new(0),
            config,
        })
    }

    /// Connects to `addr` and performs the WebSocket handshake for `url`. The error is a short
    /// reason for the connect error book.
    pub async fn dial(&self, addr: SocketAddr, url: &str) -> Result<Ws, String> {
        match tokio::time::timeout(CONNECT_TIMEOUT, self.dial_inner(addr, url)).await {
            Ok(r) => r,
            Err(_) => Err("timeout".into()),
        }
    }

    async fn dial_inner(&self, addr: SocketAddr, url: &str) -> Result<Ws, String> {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .map_err(|e| format!("socket: {}", short_io(&e)))?;
        if !self.sources.is_empty() {
            let i = self.next.fetch_add(1, Ordering::Relaxed) % self.sources.len();
            socket
                .bind(SocketAddr::new(self.sources[i], 0))
                .map_err(|e| format!("bind {}: {}", self.sources[i], short_io(&e)))?;
        }
        let stream = socket
            .connect(addr)
            .await
            .map_err(|e| format!("tcp: {}", short_io(&e)))?;
        // Presence frames are small and latency is what we measure: no Nagle delay.
        stream
            .set_nodelay(true)
            .map_err(|e| format!("nodelay: {}", short_io(&e)))?;
        let (ws, _) = tokio_tungstenite::client_async_with_config(url, stream, Some(self.config))
            .await
            .map_err(|e| match e {
                tokio_tungstenite::tungstenite::Error::Http(r) => {
                    format!("handshake: http {}", r.status().as_u16())
                }
                other => format!("handshake: {other}"),
            })?;
        Ok(ws)
    }
}

/// The address to connect to for a `ws://` URL.
pub async fn resolve_ws(url: &str) -> anyhow::Result<SocketAddr> {
    let uri: Uri = url.parse().with_context(|| format!("ws_url {url:?}"))?;
    if uri.scheme_str() != Some("ws") {
        bail!("ws_url {url:?}: only ws:// is supported");
    }
    let auth = uri.authority().context("ws_url has no host")?;
    let host = auth.host().trim_start_matches('[').trim_end_matches(']');
    tokio::net::lookup_host((host, auth.port_u16().unwrap_or(80)))
        .await
        .with_context(|| format!("resolve {host}"))?
        .next()
        .with_context(|| format!("{host} resolves to no address"))
}

/// An IO error as a short stable key: the OS message without the changing parts.
pub fn short_io(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(_) => {
            let s = e.to_string();
            s.split(" (os error").next().unwrap_or(&s).to_string()
        }
        None => format!("{:?}", e.kind()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads_over_loopback_addresses_only_when_needed() {
        let server: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let per = ports_per_source();
        assert!(Dialer::new(&[], server, per).unwrap().sources.is_empty());
        let d = Dialer::new(&[], server, per * 2 + 1).unwrap();
        let want: Vec<IpAddr> = (1..=3)
            .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, i)))
            .collect();
        assert_eq!(d.sources, want);
        let remote: SocketAddr = "10.1.2.3:8080".parse().unwrap();
        assert!(
            Dialer::new(&[], remote, per * 2).is_err(),
            "needs --source-ips"
        );
        let ip: IpAddr = "10.0.0.9".parse().unwrap();
        assert_eq!(Dialer::new(&[ip], remote, 10).unwrap().sources, vec![ip]);
    }
}
