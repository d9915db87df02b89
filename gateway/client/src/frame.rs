//! Frames: a 4-byte little-endian length, then that many bytes of one
//! protobuf message. The decoder never trusts the length: it refuses empty
//! and oversized frames before reading them, and never allocates more than
//! `MAX_FRAME_BYTES` for one.

use bytes::{Buf, BytesMut};
use prost::Message;

/// The largest frame body accepted or sent.
pub const MAX_FRAME_BYTES: usize = 65_536;
const LENGTH_BYTES: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {0} bytes exceeds the maximum of {MAX_FRAME_BYTES}")]
    TooLarge(usize),
    #[error("empty frame")]
    Empty,
}

/// Takes one whole frame body off the front of `buffer`, if one is there.
pub fn split_frame(buffer: &mut BytesMut) -> Result<Option<BytesMut>, FrameError> {
    if buffer.len() < LENGTH_BYTES {
        return Ok(None);
    }
    let length = u32::from_le_bytes([buffer[0], buffer[1], buffer[2], buffer[3]]) as usize;
    if length == 0 {
        return Err(FrameError::Empty);
    }
    if length > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge(length));
    }
    if buffer.len() < LENGTH_BYTES + length {
        buffer.reserve(LENGTH_BYTES + length - buffer.len());
        return Ok(None);
    }
    buffer.advance(LENGTH_BYTES);
    Ok(Some(buffer.split_to(length)))
}

/// Appends `message` as a frame to `out`.
pub fn encode_frame(message: &impl Message, out: &mut Vec<u8>) {
    let length = message.encoded_len();
    debug_assert!(length <= MAX_FRAME_BYTES, "the server never builds a frame over the maximum");
    out.extend_from_slice(&(length as u32).to_le_bytes());
    message.encode(out).expect("a Vec grows as needed");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{client_frame, ClientFrame, Ping};

    #[test]
    fn frames_split_whole_and_refuse_bad_lengths() {
        let frame = ClientFrame { request_id: 7, body: Some(client_frame::Body::Ping(Ping {})) };
        let mut bytes = Vec::new();
        encode_frame(&frame, &mut bytes);
        encode_frame(&frame, &mut bytes);
        let mut buffer = BytesMut::from(&bytes[..3]);
        assert_eq!(split_frame(&mut buffer), Ok(None), "a partial length waits");
        let mut buffer = BytesMut::from(&bytes[..]);
        let first = split_frame(&mut buffer).expect("valid").expect("whole");
        assert_eq!(ClientFrame::decode(first).expect("decodes"), frame);
        assert!(split_frame(&mut buffer).expect("valid").is_some());
        assert_eq!(split_frame(&mut buffer), Ok(None));
        let mut empty = BytesMut::from(&[0u8, 0, 0, 0][..]);
        assert_eq!(split_frame(&mut empty), Err(FrameError::Empty));
        let mut huge = BytesMut::from(&[0xff_u8, 0xff, 0xff, 0x7f][..]);
        assert_eq!(split_frame(&mut huge), Err(FrameError::TooLarge(0x7fff_ffff)));
    }
}
