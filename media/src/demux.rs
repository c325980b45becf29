//! Which session a datagram on the node's one media port belongs to.
//!
//! What it does: the first packet of every peer is a STUN binding request whose USERNAME is
//! `<our ufrag>:<their ufrag>`; [`stun_local_ufrag`] reads our half without parsing anything
//! else, and [`Routes`] maps it (and, once learned, the peer's source address) to the session
//! that owns the peer. Lookups are hash lookups, never a scan over every peer of the node.
//!
//! What it does not do: validate STUN integrity (str0m checks the MESSAGE-INTEGRITY of what it
//! receives) or talk to sockets.

use std::collections::HashMap;
use std::net::SocketAddr;

const STUN_MAGIC: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
const ATTR_USERNAME: u16 = 0x0006;

/// Our ICE ufrag in a STUN message (the part of USERNAME before `:`), if `data` is STUN and
/// carries one. RFC 7983: a first byte of 0–3 is STUN.
pub fn stun_local_ufrag(data: &[u8]) -> Option<&str> {
    if data.len() < 20 || data[0] > 3 || data[4..8] != STUN_MAGIC {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([data[2], data[3]]));
    let body = data.get(20..20 + len)?;
    let mut at = 0;
    while at + 4 <= body.len() {
        let kind = u16::from_be_bytes([body[at], body[at + 1]]);
        let n = usize::from(u16::from_be_bytes([body[at + 2], body[at + 3]]));
        let value = body.get(at + 4..at + 4 + n)?;
        if kind == ATTR_USERNAME {
            let s = std::str::from_utf8(value).ok()?;
            return s.split(':').next().filter(|u| !u.is_empty());
        }
        at += 4 + n.div_ceil(4) * 4;
    }
    None
}

/// Routes of one node's media port: ufrag → session and remote address → session.
#[derive(Debug)]
pub struct Routes<S> {
    ufrags: HashMap<String, S>,
    addrs: HashMap<SocketAddr, S>,
}

impl<S> Default for Routes<S> {
    fn default() -> Self {
        Routes {
            ufrags: HashMap::new(),
            addrs: HashMap::new(),
        }
    }
}

impl<S: Clone> Routes<S> {
    /// The session a datagram from `source` belongs to: by address once known, else by the
    /// STUN ufrag it names.
    pub fn lookup(&self, source: SocketAddr, data: &[u8]) -> Option<S> {
        if let Some(s) = self.addrs.get(&source) {
            return Some(s.clone());
        }
        stun_local_ufrag(data).and_then(|u| self.ufrags.get(u).cloned())
    }

    pub fn add_ufrag(&mut self, ufrag: String, session: S) {
        self.ufrags.insert(ufrag, session);
    }

    pub fn remove_ufrag(&mut self, ufrag: &str) {
        self.ufrags.remove(ufrag);
    }

    pub fn add_addr(&mut self, addr: SocketAddr, session: S) {
        self.addrs.insert(addr, session);
    }

    pub fn remove_addr(&mut self, addr: &SocketAddr) {
        self.addrs.remove(addr);
    }

    /// How many peers' ufrags are routed (for metrics).
    pub fn ufrag_count(&self) -> usize {
        self.ufrags.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stun(username: &str) -> Vec<u8> {
        let mut attr = Vec::new();
        attr.extend_from_slice(&ATTR_USERNAME.to_be_bytes());
        attr.extend_from_slice(&(username.len() as u16).to_be_bytes());
        attr.extend_from_slice(username.as_bytes());
        while attr.len() % 4 != 0 {
            attr.push(0);
        }
        // An unrelated attribute first (PRIORITY), so the walk is exercised.
        let mut body = vec![0x00, 0x24, 0x00, 0x04, 1, 2, 3, 4];
        body.extend_from_slice(&attr);
        let mut m = vec![0x00, 0x01];
        m.extend_from_slice(&(body.len() as u16).to_be_bytes());
        m.extend_from_slice(&STUN_MAGIC);
        m.extend_from_slice(&[7; 12]);
        m.extend_from_slice(&body);
        m
    }

    #[test]
    fn a_binding_request_names_our_ufrag_first() {
        assert_eq!(stun_local_ufrag(&stun("srvA:cliB")), Some("srvA"));
    }

    #[test]
    fn rtp_dtls_and_garbage_name_no_ufrag() {
        assert_eq!(stun_local_ufrag(&[0x80; 40]), None); // RTP
        assert_eq!(stun_local_ufrag(&[22; 40]), None); // DTLS
        assert_eq!(stun_local_ufrag(&[0; 5]), None);
        let mut truncated = stun("srvA:cliB");
        truncated.truncate(30);
        assert_eq!(stun_local_ufrag(&truncated), None);
        let mut lying = stun("srvA:cliB");
        lying[3] = 0xff; // length past the end
        assert_eq!(stun_local_ufrag(&lying), None);
    }

    #[test]
    fn routes_prefer_the_learned_address_then_the_ufrag() {
        let mut r = Routes::default();
        let a: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        r.add_ufrag("srvA".into(), 1);
        assert_eq!(r.lookup(a, &stun("srvA:x")), Some(1));
        assert_eq!(r.lookup(a, &[0x80; 40]), None);
        r.add_addr(a, 2);
        assert_eq!(r.lookup(a, &[0x80; 40]), Some(2));
        r.remove_addr(&a);
        r.remove_ufrag("srvA");
        assert_eq!(r.lookup(a, &stun("srvA:x")), None);
    }
}
