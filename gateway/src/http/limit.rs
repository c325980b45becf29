//! Per-address limits on creating rooms and streams (creating one costs nothing and needs no
//! account, so without this one client could fill a node's room or stream limit), on sign-ups
//! and log-ins (password guessing) and on writes of posts and places.
//!
//! The address is the TCP peer's, unless that peer is a trusted proxy
//! (`limits.trusted_proxies`): then it is the rightmost address of `X-Forwarded-For` that is not
//! itself a trusted proxy. Without trusted proxies, behind a reverse proxy every client shares
//! the proxy's address and the limits apply to all of them together.

use crate::ws::ratelimit::Bucket;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::Instant;

/// Token buckets per client address.
pub struct CreateLimiter {
    per_minute: u32,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

/// Above this many tracked addresses, refilled buckets are forgotten (they equal new ones).
const PRUNE_ABOVE: usize = 50_000;

impl CreateLimiter {
    pub fn new(per_minute: u32) -> Self {
        CreateLimiter {
            per_minute,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `ip` may create one more room or stream now.
    pub fn allow(&self, ip: IpAddr, now: Instant) -> bool {
        // Every operation is a single insert/update: a poisoned lock holds nothing half-done.
        let mut map = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > PRUNE_ABOVE {
            map.retain(|_, b| !b.is_full(now));
        }
        map.entry(client_key(ip))
            .or_insert_with(|| Bucket::per_minute(self.per_minute, now))
            .take(now)
    }
}

/// The unit a limit applies to: an IPv4 address, or an IPv6 /64 (one subscriber usually holds
/// a whole /64, so per-address limits would be no limit at all).
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

/// Refuses with 429 `rate_limited` when `ip` created too many rooms or streams lately.
pub fn check_create(
    limiter: &CreateLimiter,
    ip: Option<IpAddr>,
) -> Result<(), crate::error::AppError> {
    check_rate(limiter, ip, "rooms or streams")
}

/// Refuses with 429 `rate_limited` when `ip` used up its allowance of `what` lately.
pub fn check_rate(
    limiter: &CreateLimiter,
    ip: Option<IpAddr>,
    what: &str,
) -> Result<(), crate::error::AppError> {
    match ip {
        Some(ip) if !limiter.allow(ip, Instant::now()) => Err(crate::error::AppError::new(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            wagu_proto::ErrorCode::RateLimited,
            format!(
                "this address made {} {what} in the last minute; try again shortly",
                limiter.per_minute
            ),
        )),
        _ => Ok(()),
    }
}

/// The client's address: the TCP peer's (the server is started with connection info, always
/// through `wagu_gateway::serve`), or behind trusted proxies the one they forwarded.
pub struct ClientIp(pub Option<IpAddr>);

impl FromRequestParts<crate::state::AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &crate::state::AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        Ok(ClientIp(peer.map(|p| {
            client_ip(p, &parts.headers, &app.trusted_proxies)
        })))
    }
}

/// `peer`, or — when `peer` is a trusted proxy — the rightmost `X-Forwarded-For` address that
/// is not one (each proxy appends the address it saw, so that one is where the trusted chain
/// begins; anything left of it the client may have written). A malformed entry stops the walk
/// at the last trusted hop.
pub fn client_ip(
    peer: IpAddr,
    headers: &axum::http::HeaderMap,
    trusted: &[ipnet::IpNet],
) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for hop in hops.into_iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(ip) if is_trusted(&ip) => client = ip,
            Ok(ip) => return ip,
            Err(_) => return client,
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn behind_trusted_proxies_the_client_is_the_first_untrusted_forwarded_address() {
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let mut h = axum::http::HeaderMap::new();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // No proxy: the peer, whatever the header says.
        h.insert("x-forwarded-for", "203.0.113.9".parse().unwrap());
        assert_eq!(
            client_ip(ip("198.51.100.1"), &h, &trusted),
            ip("198.51.100.1")
        );
        // Through the proxy: what it saw.
        assert_eq!(client_ip(ip("10.0.0.5"), &h, &trusted), ip("203.0.113.9"));
        // A client that writes its own header cannot pick its address: the proxy appended the
        // real one last.
        h.insert("x-forwarded-for", "1.2.3.4, 203.0.113.9".parse().unwrap());
        assert_eq!(client_ip(ip("10.0.0.5"), &h, &trusted), ip("203.0.113.9"));
        // Two proxies in a row, and header lines split over several fields.
        h.insert("x-forwarded-for", "203.0.113.9".parse().unwrap());
        h.append("x-forwarded-for", "10.0.0.7".parse().unwrap());
        assert_eq!(client_ip(ip("10.0.0.5"), &h, &trusted), ip("203.0.113.9"));
        // Garbage stops at the last trusted hop; no header at all is the proxy itself.
        h.insert("x-forwarded-for", "not-an-ip".parse().unwrap());
        assert_eq!(client_ip(ip("10.0.0.5"), &h, &trusted), ip("10.0.0.5"));
        assert_eq!(
            client_ip(ip("10.0.0.5"), &axum::http::HeaderMap::new(), &trusted),
            ip("10.0.0.5")
        );
    }

    #[test]
    fn a_minute_worth_then_refill() {
        let t0 = Instant::now();
        let l = CreateLimiter::new(3);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        assert!((0..3).all(|_| l.allow(ip, t0)));
        assert!(!l.allow(ip, t0));
        assert!(l.allow("10.0.0.2".parse().unwrap(), t0), "per address");
        assert!(
            l.allow(ip, t0 + Duration::from_secs(20)),
            "one back after 20 s at 3/min"
        );
        // Every address of one IPv6 /64 shares a bucket.
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        assert!(
            (0..3).all(|i| l.allow(format!("2001:db8:1:2::{:x}", i + 100).parse().unwrap(), t0))
        );
        assert!(!l.allow(a, t0));
        assert!(l.allow("2001:db8:1:3::1".parse().unwrap(), t0));
    }
}
