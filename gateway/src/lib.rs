//! The gateway: the binary TCP protocol and the PAM HTTP API in front of a
//! node's shards.
//!
//! The wire messages, framing and error codes are the client crate's
//! (`casino-client`, gateway/client), which both ends share.
pub use casino_client::{error, frame, proto};

pub mod auth;
pub mod choice;
pub mod metrics;
pub mod net;
pub mod pam;
pub mod rate;
pub mod server;
pub mod tls;
pub mod translate;
