//! Any bytes into the client-frame decoder: it must return Ok or a typed error, never panic,
//! and whatever it accepts must re-encode and decode to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wagu_proto::codec::{decode_client, encode_client};

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = decode_client(data) {
        let again = encode_client(&msg);
        let back = decode_client(again.as_bytes()).expect("re-encoded frame decodes");
        assert_eq!(back, msg);
    }
});
