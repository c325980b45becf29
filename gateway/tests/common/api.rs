//! A typed client for the gateway's JSON API in tests: one method per HTTP verb, signed in
//! with a bearer token or not, JSON in and `(status, JSON)` out. It replaces hand-written
//! `call(addr, "POST", path, token, body)` helpers.
//!
//! What it does not do: assert anything (tests do), or WebSockets ([`super::Client`]).

use serde_json::Value;
use std::net::SocketAddr;

/// The API of one test server, as one caller (anonymous, or signed in).
#[derive(Clone, Debug)]
pub struct Api {
    addr: SocketAddr,
    token: Option<String>,
}

impl Api {
    /// An anonymous caller.
    pub fn new(addr: SocketAddr) -> Api {
        Api { addr, token: None }
    }

    /// The same server, signed in with this access token (sent as `Authorization: Bearer`).
    pub fn bearer(&self, token: &str) -> Api {
        Api {
            addr: self.addr,
            token: Some(token.to_string()),
        }
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.send("GET", path, Value::Null).await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.send("DELETE", path, Value::Null).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send("POST", path, body).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> (u16, Value) {
        self.send("PATCH", path, body).await
    }

    pub async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.send("PUT", path, body).await
    }

    /// Any method; a `null` body is sent as no body, an empty answer reads as `null`.
    pub async fn send(&self, method: &str, path: &str, body: Value) -> (u16, Value) {
        let body = if body.is_null() {
            String::new()
        } else {
            body.to_string()
        };
        super::api(self.addr, method, path, self.token.as_deref(), &body).await
    }
}
