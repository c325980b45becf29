//! A minimal HTTP/1.1 client for the few JSON requests a run makes (create a room, check
//! health): one keep-alive connection per client, `Content-Length` and chunked bodies.
//!
//! Why not a full client crate: the harness needs two request shapes against a server we
//! control, and a keep-alive connection matters more than features — creating ten thousand
//! rooms over fresh connections would leave ten thousand sockets in TIME_WAIT competing with
//! the WebSocket connections for ephemeral ports.

use anyhow::{Context, bail};
use std::io;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::http::Uri;

/// Longest a request may take, connect included.
const TIMEOUT: Duration = Duration::from_secs(30);
/// Largest response body accepted (room creation answers are a few hundred bytes).
const MAX_BODY: usize = 1 << 20;

/// Where the server's HTTP API is.
#[derive(Clone, Debug)]
pub struct Base {
    pub addr: SocketAddr,
    /// `Host` header value.
    pub host: String,
    /// Path prefix without a trailing slash ("" for the root).
    pub prefix: String,
}

impl Base {
    /// Parses `http://host[:port][/prefix]` and resolves the host once.
    pub async fn parse(url: &str) -> anyhow::Result<Base> {
        let uri: Uri = url.parse().with_context(|| format!("--url {url:?}"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(s) => bail!("--url: scheme {s:?} is not supported (plain http only)"),
            None => bail!("--url must start with http://"),
        }
        let auth = uri.authority().context("--url has no host")?;
        let port = auth.port_u16().unwrap_or(80);
        let host = auth.host().trim_start_matches('[').trim_end_matches(']');
        let addr = tokio::net::lookup_host((host, port))
            .await
            .with_context(|| format!("resolve {host}"))?
            .next()
            .with_context(|| format!("{host} resolves to no address"))?;
        Ok(Base {
            addr,
            host: auth.as_str().to_string(),
            prefix: uri.path().trim_end_matches('/').to_string(),
        })
    }
}

pub struct HttpClient {
    base: Base,
    conn: Option<BufReader<TcpStream>>,
}

impl HttpClient {
    pub fn new(base: Base) -> Self {
        HttpClient { base, conn: None }
    }

    /// `POST` a JSON body; returns the status and the body.
    pub async fn post_json(&mut self, path: &str, body: &[u8]) -> io::Result<(u16, Vec<u8>)> {
        self.request("POST", path, body).await
    }

    pub async fn get(&mut self, path: &str) -> io::Result<(u16, Vec<u8>)> {
        self.request("GET", path, b"").await
    }

    async fn request(
        &mut self,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> io::Result<(u16, Vec<u8>)> {
        let reused = self.conn.is_some();
        match tokio::time::timeout(TIMEOUT, self.once(method, path, body)).await {
            Ok(Ok(r)) => Ok(r),
            // A kept-alive connection the server closed while idle fails before any answer;
            // that is the one case worth a fresh connection (the request never reached it).
            Ok(Err(e)) if reused && e.kind() == io::ErrorKind::UnexpectedEof => {
                self.conn = None;
                tokio::time::timeout(TIMEOUT, self.once(method, path, body))
                    .await
                    .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))
            }
            Ok(Err(e)) => {
                self.conn = None;
                Err(e)
            }
            Err(_) => {
                self.conn = None;
                Err(io::ErrorKind::TimedOut.into())
            }
        }
    }

    async fn once(&mut self, method: &str, path: &str, body: &[u8]) -> io::Result<(u16, Vec<u8>)> {
        if self.conn.is_none() {
            let s = TcpStream::connect(self.base.addr).await?;
            s.set_nodelay(true)?;
            self.conn = Some(BufReader::new(s));
        }
        let conn = self.conn.as_mut().expect("connected above");
        let head = format!(
            "{method} {}{path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nAccept: application/json\r\nContent-Length: {}\r\n\r\n",
            self.base.prefix,
            self.base.host,
            body.len()
        );
        let mut req = head.into_bytes();
        req.extend_from_slice(body);
        conn.get_mut().write_all(&req).await?;

        let mut line = String::new();
        if conn.read_line(&mut line).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let status = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or_else(|| bad(format!("bad status line {line:?}")))?;
        let (mut length, mut chunked, mut close) = (None, false, false);
        loop {
            line.clear();
            if conn.read_line(&mut line).await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            let Some((name, value)) = l.split_once(':') else {
                continue;
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(
                    value
                        .parse::<usize>()
                        .map_err(|_| bad("bad content-length"))?,
                );
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.eq_ignore_ascii_case("chunked");
            } else if name.eq_ignore_ascii_case("connection") {
                close = value.eq_ignore_ascii_case("close");
            }
        }
        let body = if chunked {
            read_chunked(conn).await?
        } else if let Some(n) = length {
            if n > MAX_BODY {
                return Err(bad("response body too large"));
            }
            let mut b = vec![0; n];
            conn.read_exact(&mut b).await?;
            b
        } else {
            // No length: the body runs to the end of the connection.
            close = true;
            let mut b = Vec::new();
            conn.take(MAX_BODY as u64).read_to_end(&mut b).await?;
            b
        };
        if close {
            self.conn = None;
        }
        Ok((status, body))
    }
}

async fn read_chunked(conn: &mut BufReader<TcpStream>) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        conn.read_line(&mut line).await?;
        let size_hex = line.trim_end().split(';').next().unwrap_or("");
        let size = usize::from_str_radix(size_hex, 16).map_err(|_| bad("bad chunk size"))?;
        if body.len() + size > MAX_BODY {
            return Err(bad("response body too large"));
        }
        if size == 0 {
            // Trailers (none expected) end with an empty line.
            loop {
                line.clear();
                if conn.read_line(&mut line).await? == 0 || line.trim_end().is_empty() {
                    return Ok(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        conn.read_exact(&mut body[start..]).await?;
        let mut crlf = [0u8; 2];
        conn.read_exact(&mut crlf).await?;
    }
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}
