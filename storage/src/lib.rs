//! Wagu storage backends.
//!
//! Each kind of data has a backend that needs nothing installed (the embedded default) and a
//! real one chosen by configuration:
//!
//! | data | embedded default | real backend |
//! |---|---|---|
//! | [`ephemeral`]: room snapshots, share links, votes (short-lived, with TTL) | `redb` file under the data directory (or in-process memory, for tests) | Redis |
//! | [`blob`]: photos | files under the data directory | S3 (any S3-compatible server) |
//! | [`records`]: accounts, places, posts, photo records (durable) | `redb` file under the data directory | ScyllaDB / Cassandra ([`cql`] sessions) |
//!
//! [`bus`] carries messages between nodes: NATS, or in-process memory for tests and one node.
//!
//! Backends are enums, not trait objects: there are two or three of each, the match is free, and async
//! methods stay plain `async fn`. What this crate does not do: room rules, serialisation of
//! domain types (callers hand it bytes), retries beyond what the drivers do.

pub mod blob;
pub mod bus;
pub mod cluster;
pub mod cql;
pub mod ephemeral;
mod error;
pub mod records;
pub mod testbed;

pub use blob::BlobStore;
pub use bus::Bus;
pub use ephemeral::EphemeralStore;
pub use error::StorageError;
