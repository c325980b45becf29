//! The node's open-file budget: how many WebSockets it can hold before `accept` would fail.
//!
//! Every connection is a file descriptor. With the common default soft limit of 1,024 a node
//! would accept about a thousand sockets and then loop on `accept error: Too many open files`
//! while clients time out. So the `wagu` binary raises the soft `RLIMIT_NOFILE` to the hard
//! limit at startup (as Go servers do by themselves), and the node refuses WebSockets beyond
//! what the limit leaves, after a reserve for everything else, with the documented 503
//! `capacity` — a refusal a client can act on, instead of a connection that hangs.
//!
//! This module only reads and raises the limit and does the arithmetic; the refusal is in
//! `ws::upgrade`, the startup log in `App::build`.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Descriptors kept back from WebSockets for everything else a node opens: plain HTTP
/// requests, the database and Redis connections, the media socket, files, the runtime's own.
/// A tenth of the limit, at least 64 and at most 4,096.
pub fn reserve(soft: u64) -> u64 {
    (soft / 10).clamp(64, 4096)
}

/// The soft `RLIMIT_NOFILE` in force (`None`: unlimited).
pub fn soft_limit() -> Option<u64> {
    getrlimit(Resource::Nofile).current
}

/// What [`raise_soft_to_hard`] found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Raised {
    pub before: Option<u64>,
    pub after: Option<u64>,
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (an unprivileged process may).
pub fn raise_soft_to_hard() -> std::io::Result<Raised> {
    let lim = getrlimit(Resource::Nofile);
    let before = lim.current;
    if before == lim.maximum {
        return Ok(Raised {
            before,
            after: before,
        });
    }
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: lim.maximum,
            maximum: lim.maximum,
        },
    )?;
    Ok(Raised {
        before,
        after: soft_limit(),
    })
}

/// How many WebSockets this node may hold: `configured` (`limits.max_connections`), lowered to
/// what the open-file limit `soft` leaves after [`reserve`].
pub fn connection_budget(configured: usize, soft: Option<u64>) -> usize {
    match soft {
        None => configured,
        Some(soft) => {
            let left = soft.saturating_sub(reserve(soft));
            configured.min(usize::try_from(left).unwrap_or(usize::MAX))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_soft_limit_leaves_922_websockets() {
        // A tenth (102) is kept back.
        assert_eq!(connection_budget(100_000, Some(1024)), 922);
        // Below 640 the floor of 64 applies.
        assert_eq!(connection_budget(100_000, Some(256)), 192);
    }

    #[test]
    fn a_large_limit_keeps_at_most_4096_back_and_the_configured_maximum_wins_below_it() {
        assert_eq!(
            connection_budget(2_000_000, Some(1_048_576)),
            1_048_576 - 4096
        );
        assert_eq!(connection_budget(100_000, Some(1_048_576)), 100_000);
    }

    #[test]
    fn an_unlimited_or_tiny_limit_is_handled() {
        assert_eq!(connection_budget(500, None), 500);
        assert_eq!(connection_budget(500, Some(50)), 0);
    }

    #[test]
    fn raising_to_the_hard_limit_is_idempotent() {
        let first = raise_soft_to_hard().unwrap();
        let second = raise_soft_to_hard().unwrap();
        assert_eq!(first.after, getrlimit(Resource::Nofile).maximum);
        assert_eq!(second.before, second.after);
    }
}
