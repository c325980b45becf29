//! How tests find the real services that `deploy/test.sh` starts.
//!
//! Each service's address comes in an environment variable. Unset (a plain `cargo test` on a
//! laptop): the test is skipped and says so on stderr. Set: the test must reach the service, and
//! fails when it cannot — a promised service never lets a test pass silently.

/// Redis URL, e.g. `redis://127.0.0.1:16379/`.
pub const REDIS_URL: &str = "WAGU_TEST_REDIS_URL";
/// NATS URL of the bus between nodes, e.g. `nats://127.0.0.1:14222`.
pub const NATS_URL: &str = "WAGU_TEST_NATS_URL";
/// Comma-separated CQL contact points, e.g. `127.0.0.1:19042`.
pub const CQL_NODES: &str = "WAGU_TEST_CQL_NODES";
/// S3 endpoint, e.g. `http://127.0.0.1:19000`.
pub const S3_ENDPOINT: &str = "WAGU_TEST_S3_ENDPOINT";

/// The variable's value, or `None` after printing why the calling test is skipped.
pub fn service(var: &str, test: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => Some(v),
        _ => {
            eprintln!("SKIPPED {test}: {var} is not set (deploy/test.sh starts the real service)");
            None
        }
    }
}

/// A required companion variable of a service that is promised: missing means a broken bed.
pub fn required(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| panic!("{var} must be set alongside the service URL"))
}

/// The S3 settings of the test bed, if it is promised.
pub fn s3(test: &str) -> Option<crate::blob::S3Config> {
    let endpoint = service(S3_ENDPOINT, test)?;
    Some(crate::blob::S3Config {
        endpoint: Some(endpoint),
        region: std::env::var("WAGU_TEST_S3_REGION").unwrap_or_else(|_| "us-east-1".into()),
        bucket: required("WAGU_TEST_S3_BUCKET"),
        access_key: Some(required("WAGU_TEST_S3_ACCESS_KEY")),
        secret_key: Some(required("WAGU_TEST_S3_SECRET_KEY")),
        path_style: true,
    })
}

/// A TCP proxy to a service (a `redis://host:port/` URL) that a test can cut, as a network
/// partition would: every connection through it dies and new ones are refused.
pub struct CuttableProxy {
    addr: std::net::SocketAddr,
    tasks: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl CuttableProxy {
    pub async fn to(redis_url: &str) -> CuttableProxy {
        let target = redis_url
            .trim_start_matches("redis://")
            .trim_end_matches('/')
            .to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port for the proxy");
        let addr = listener.local_addr().expect("bound");
        let tasks = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let t = tasks.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let target = target.clone();
                t.lock().unwrap().push(tokio::spawn(async move {
                    if let Ok(mut out) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                    }
                }));
            }
        });
        CuttableProxy {
            addr,
            tasks,
            accept,
        }
    }

    /// The proxy as a Redis URL.
    pub fn url(&self) -> String {
        format!("redis://{}/", self.addr)
    }

    /// Drops every connection and refuses new ones.
    pub fn cut(&self) {
        self.accept.abort();
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
    }
}
