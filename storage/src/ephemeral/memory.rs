//! The in-process ephemeral store: a map behind a mutex, with expiry checked on read and swept
//! on write. Lives as long as the process; that is the point of "ephemeral" here.

use bytes::Bytes;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

enum Value {
    One(Bytes),
    List(Vec<Bytes>),
}

struct Entry {
    value: Value,
    expires: Instant,
}

#[derive(Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    map: HashMap<String, Entry>,
    writes: u64,
}

impl Inner {
    /// Every 1,024 writes, drop what expired, so keys nobody reads again do not pile up.
    fn maybe_sweep(&mut self, now: Instant) {
        self.writes += 1;
        if self.writes.is_multiple_of(1024) {
            self.map.retain(|_, e| e.expires > now);
        }
    }

    fn live(&self, key: &str, now: Instant) -> Option<&Entry> {
        self.map.get(key).filter(|e| e.expires > now)
    }
}

impl MemoryStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the map half-updated (every operation
        // is a single insert/remove), so a poisoned lock is still safe to use.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn put(&self, key: &str, value: Bytes, ttl: Duration) {
        let now = Instant::now();
        let mut g = self.lock();
        g.maybe_sweep(now);
        g.map.insert(
            key.to_string(),
            Entry {
                value: Value::One(value),
                expires: now + ttl,
            },
        );
    }

    pub fn get(&self, key: &str) -> Option<Bytes> {
        let g = self.lock();
        match g.live(key, Instant::now()).map(|e| &e.value) {
            Some(Value::One(b)) => Some(b.clone()),
            _ => None,
        }
    }

    pub fn delete(&self, keys: &[&str]) {
        let mut g = self.lock();
        for k in keys {
            g.map.remove(*k);
        }
    }

    pub fn append(&self, key: &str, value: Bytes, ttl: Duration) {
        let now = Instant::now();
        let mut g = self.lock();
        g.maybe_sweep(now);
        let expires = now + ttl;
        let alive = g.live(key, now).is_some();
        match g.map.get_mut(key) {
            Some(Entry {
                value: Value::List(items),
                expires: e,
            }) if alive => {
                items.push(value);
                *e = expires;
            }
            _ => {
                g.map.insert(
                    key.to_string(),
                    Entry {
                        value: Value::List(vec![value]),
                        expires,
                    },
                );
            }
        }
    }

    pub fn list(&self, key: &str) -> Vec<Bytes> {
        let g = self.lock();
        match g.live(key, Instant::now()).map(|e| &e.value) {
            Some(Value::List(items)) => items.clone(),
            _ => Vec::new(),
        }
    }
}
