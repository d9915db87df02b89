//! The gateway's own error codes: refusals of a frame, a connection or a
//! request before it reaches the engine. Stable wire numbers, like the
//! engine's rejection codes (which stay below 2000).

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum ErrorCode {
    /// The frame's bytes are not a valid ClientFrame.
    MalformedFrame = 2000,
    /// The frame's length is over the maximum (the connection closes).
    FrameTooLarge = 2001,
    /// The Hello asked for a protocol version this server does not speak
    /// (the connection closes).
    UnsupportedVersion = 2002,
    /// A request before a successful Hello, or a second Hello.
    NotAuthenticated = 2003,
    /// The API key is not known (the connection closes).
    BadCredentials = 2004,
    /// The session token is malformed, forged, or from another operator.
    TokenInvalid = 2005,
    /// The session token has expired.
    TokenExpired = 2006,
    /// The request needs another role (admin requests on an operator
    /// connection, player requests on an admin connection).
    Forbidden = 2007,
    /// A rate limit (per connection or per operator) refused the request.
    RateLimited = 2008,
    /// The shard's queue is full; retry later with the same ids.
    Overloaded = 2009,
    /// The frame's body is empty or a message type this server does not know.
    UnknownMessage = 2011,
    /// A required field is missing or out of range (an unknown enum value, a
    /// bet string that does not parse).
    InvalidRequest = 2012,
    /// The server has too many connections (the connection closes).
    TooManyConnections = 2013,
    /// The connection was idle too long (the connection closes).
    IdleTimeout = 2014,
    /// Empty frame.
    EmptyFrame = 2015,
    /// The node cannot do this now: a snapshot asked of a node that keeps
    /// no data, or one that failed (the message says why).
    Unavailable = 2016,
}

impl ErrorCode {
    pub const ALL: &'static [ErrorCode] = &[
        ErrorCode::MalformedFrame,
        ErrorCode::FrameTooLarge,
        ErrorCode::UnsupportedVersion,
        ErrorCode::NotAuthenticated,
        ErrorCode::BadCredentials,
        ErrorCode::TokenInvalid,
        ErrorCode::TokenExpired,
        ErrorCode::Forbidden,
        ErrorCode::RateLimited,
        ErrorCode::Overloaded,
        ErrorCode::UnknownMessage,
        ErrorCode::InvalidRequest,
        ErrorCode::TooManyConnections,
        ErrorCode::IdleTimeout,
        ErrorCode::EmptyFrame,
        ErrorCode::Unavailable,
    ];

    pub fn code(self) -> u32 {
        self as u32
    }

    pub fn from_code(code: u32) -> Option<ErrorCode> {
        ErrorCode::ALL.iter().copied().find(|e| e.code() == code)
    }
}
