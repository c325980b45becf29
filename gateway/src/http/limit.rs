//! Per-address limits on creating rooms and streams (creating one costs nothing and needs no
//! account, so without this one client could fill a node's room or stream limit), on sign-ups
//! and log-ins (password guessing) and on writes of posts and places.
//!
//! The address is the TCP peer. Behind a reverse proxy every client shares the proxy's address;
//! the limit then applies to all of them together (raise `rate.creates_per_minute`).

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

/// The TCP peer's address, when the server was started with connection info (always, through
/// `wagu_gateway::serve`).
pub struct ClientIp(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
