//! JSON Schemas of both directions of the protocol, generated from the Rust types so they can
//! never drift from what the server accepts. `docs/schema/*.json` hold the generated files; a
//! test fails when they are stale (regenerate with
//! `WAGU_UPDATE_SCHEMA=1 cargo test -p wagu-proto schema`).

use crate::client::ClientMessage;
use crate::server::ServerMessage;

/// The schema of every frame a client may send.
pub fn client_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(ClientMessage)).expect("schema is JSON")
}

/// The schema of every frame the server may send.
pub fn server_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(ServerMessage)).expect("schema is JSON")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn check(name: &str, value: serde_json::Value) {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../docs/schema")
            .join(name);
        let fresh = serde_json::to_string_pretty(&value).unwrap() + "\n";
        if std::env::var_os("WAGU_UPDATE_SCHEMA").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &fresh).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == fresh,
            "{} is stale: run WAGU_UPDATE_SCHEMA=1 cargo test -p wagu-proto schema",
            path.display()
        );
    }

    #[test]
    fn schema_files_are_current() {
        check("client.schema.json", client_schema());
        check("server.schema.json", server_schema());
    }
}
