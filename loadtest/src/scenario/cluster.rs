//! Several gateways: the `--url` list, which node creates each room (stream), and which node
//! each client connects to. Room (stream) `i` is created on node `i mod N`; its clients connect
//! to that node, or with `--spread-clients` each to the next node in turn (the WebSocket URL
//! the creating node answered, re-hosted onto that node).

use crate::http::Base;
use crate::target::{Driver, Target};
use anyhow::{Context, bail};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The `--url` values, split on commas and trimmed; at least one, no empty ones.
pub fn split_urls(urls: &[String]) -> anyhow::Result<Vec<String>> {
    let out: Vec<String> = urls
        .iter()
        .flat_map(|u| u.split(','))
        .map(|u| u.trim().to_string())
        .collect();
    if out.is_empty() || out.iter().any(|u| u.is_empty()) {
        bail!("--url: an empty URL in {:?}", urls.join(","));
    }
    Ok(out)
}

/// The node that creates room (stream) `session`: round-robin.
pub fn home_node(session: usize, nodes: usize) -> usize {
    session % nodes.max(1)
}

/// `ws_url` with its authority replaced by `host` (`ws://a:1/ws?x` → `ws://host/ws?x`).
pub fn rehost(ws_url: &str, host: &str) -> String {
    let (scheme, rest) = ws_url.split_once("://").unwrap_or(("ws", ws_url));
    let path = rest.find(['/', '?']).map_or("", |i| &rest[i..]);
    format!("{scheme}://{host}{path}")
}

/// One gateway of the run.
pub struct Node {
    pub url: String,
    pub base: Base,
    pub driver: Driver,
}

/// Every gateway of the run, and the client round-robin.
pub struct Cluster {
    pub nodes: Vec<Node>,
    spread: bool,
    next_client: AtomicUsize,
}

impl Cluster {
    /// Resolves every URL and checks each node answers.
    pub async fn connect(
        urls: &[String],
        target: Target,
        secret: &str,
        spread: bool,
    ) -> anyhow::Result<Cluster> {
        let mut nodes = Vec::new();
        for url in split_urls(urls)? {
            let base = Base::parse(&url).await?;
            let driver = Driver::new(target, base.clone(), secret);
            driver
                .probe()
                .await
                .with_context(|| format!("{url} ({target:?} target)"))?;
            nodes.push(Node { url, base, driver });
        }
        if nodes.len() > 1 {
            tracing::info!(
                "{} nodes: sessions created round-robin, clients connect {}",
                nodes.len(),
                if spread {
                    "round-robin across all nodes"
                } else {
                    "to the node that created their session"
                }
            );
        }
        Ok(Cluster {
            nodes,
            spread,
            next_client: AtomicUsize::new(0),
        })
    }

    /// The protocol: the same on every node.
    pub fn driver(&self) -> &Driver {
        &self.nodes[0].driver
    }

    /// The node that creates room (stream) `session`, by index.
    pub fn home(&self, session: usize) -> usize {
        home_node(session, self.nodes.len())
    }

    /// Where the next client of a session goes: the session's own URL and address, or with
    /// `--spread-clients` the next node in turn.
    pub fn client_dest(&self, ws_url: &str, addr: SocketAddr) -> (String, SocketAddr) {
        if !self.spread || self.nodes.len() < 2 {
            return (ws_url.to_string(), addr);
        }
        let n = self.next_client.fetch_add(1, Ordering::Relaxed) % self.nodes.len();
        let node = &self.nodes[n];
        (rehost(ws_url, &node.base.host), node.base.addr)
    }

    /// The URLs as given, comma-joined (a single URL stays as it was).
    pub fn url_list(&self) -> String {
        self.nodes
            .iter()
            .map(|n| n.url.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn urls(args: &[&str]) -> Vec<String> {
        let mut argv = vec!["wagu-loadtest", "rooms"];
        argv.extend_from_slice(args);
        match crate::cli::Cli::try_parse_from(argv).unwrap().command {
            crate::cli::Command::Rooms(a) => split_urls(&a.common.url).unwrap(),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn url_lists_parse_from_commas_and_repeats() {
        assert_eq!(urls(&[]), ["http://127.0.0.1:8080"]);
        assert_eq!(urls(&["--url", "http://a:1"]), ["http://a:1"]);
        assert_eq!(
            urls(&["--url", "http://a:1,http://b:2"]),
            ["http://a:1", "http://b:2"]
        );
        assert_eq!(
            urls(&["--url", "http://a:1", "--url", "http://b:2,http://c:3"]),
            ["http://a:1", "http://b:2", "http://c:3"]
        );
        assert_eq!(
            split_urls(&[" http://a:1 , http://b:2".into()]).unwrap(),
            ["http://a:1", "http://b:2"]
        );
        assert!(split_urls(&["http://a:1,,http://b:2".into()]).is_err());
        assert!(split_urls(&[]).is_err());
    }

    #[test]
    fn sessions_and_clients_go_round_robin() {
        let homes: Vec<usize> = (0..7).map(|i| home_node(i, 3)).collect();
        assert_eq!(homes, [0, 1, 2, 0, 1, 2, 0]);
        assert!((0..5).all(|i| home_node(i, 1) == 0));
        assert_eq!(home_node(4, 0), 0, "no division by zero");

        let base = |port: u16| Base {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            host: format!("127.0.0.1:{port}"),
            prefix: String::new(),
        };
        let node = |port: u16| Node {
            url: format!("http://127.0.0.1:{port}"),
            base: base(port),
            driver: Driver::new(Target::Wagu, base(port), "s"),
        };
        let cluster = |spread| Cluster {
            nodes: vec![node(1), node(2), node(3)],
            spread,
            next_client: AtomicUsize::new(0),
        };
        let home = SocketAddr::from(([127, 0, 0, 1], 2));
        let pinned = cluster(false);
        for _ in 0..4 {
            assert_eq!(
                pinned.client_dest("ws://127.0.0.1:2/ws", home),
                ("ws://127.0.0.1:2/ws".to_string(), home)
            );
        }
        let spread = cluster(true);
        let ports: Vec<u16> = (0..5)
            .map(|_| spread.client_dest("ws://127.0.0.1:2/ws", home))
            .map(|(url, addr)| {
                assert_eq!(url, format!("ws://127.0.0.1:{}/ws", addr.port()));
                addr.port()
            })
            .collect();
        assert_eq!(ports, [1, 2, 3, 1, 2]);
        assert_eq!(
            spread.url_list(),
            "http://127.0.0.1:1,http://127.0.0.1:2,http://127.0.0.1:3"
        );
    }

    #[test]
    fn rehost_keeps_path_and_query() {
        assert_eq!(rehost("ws://a:1/ws?x=1", "b:2"), "ws://b:2/ws?x=1");
        assert_eq!(rehost("ws://a:1", "b:2"), "ws://b:2");
        assert_eq!(rehost("ws://a:1?room=3", "b:2"), "ws://b:2?room=3");
    }
}
