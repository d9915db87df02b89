//! The Rust client of the binary protocol (docs/protocol.md): [`Client`],
//! async, pipelined, reconnecting and retrying with the same transaction
//! ids; [`BlockingClient`], one request at a time on a plain thread. With
//! what both ends of the protocol share: the wire messages generated from
//! `gateway/proto/casino.proto`, the length-prefixed framing, the gateway's
//! error codes and the TLS configuration. It depends on no crate of the
//! server's: a client pulls in neither the engine nor RocksDB.

pub mod proto {
    //! The wire messages, generated from `gateway/proto/casino.proto`.
    #![allow(missing_debug_implementations, clippy::all)]
    include!(concat!(env!("OUT_DIR"), "/casino.v1.rs"));
}

mod client;
pub mod error;
pub mod frame;
pub mod tls;

pub use client::{BlockingClient, Client, ClientConfig, ClientError};

/// The protocol version this client speaks and the server serves.
pub const PROTOCOL_VERSION: u32 = 1;
