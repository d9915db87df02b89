//! The gateway: the binary TCP protocol and the PAM HTTP API in front of a
//! node's shards.
pub mod proto {
    //! The wire messages, generated from `proto/casino.proto`.
    #![allow(missing_debug_implementations, clippy::all)]
    include!(concat!(env!("OUT_DIR"), "/casino.v1.rs"));
}

pub mod auth;
pub mod choice;
pub mod client;
pub mod error;
pub mod frame;
pub mod metrics;
pub mod net;
pub mod pam;
pub mod rate;
pub mod server;
pub mod tls;
pub mod translate;
