//! Everything the server does with untrusted bytes before they reach a
//! shard: split the stream into frames, decode each `ClientFrame`, and
//! translate its body into an engine command. None of it may panic, loop or
//! allocate beyond the frame limit, whatever the bytes.
#![no_main]

use bytes::BytesMut;
use engine::OperatorId;
use gateway::auth::TokenSigner;
use gateway::frame::{split_frame, MAX_FRAME_BYTES};
use gateway::proto::ClientFrame;
use gateway::translate;
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let signer = TokenSigner::new([7; 32]);
    let mut buffer = BytesMut::from(data);
    loop {
        match split_frame(&mut buffer) {
            Ok(Some(frame)) => {
                assert!(frame.len() <= MAX_FRAME_BYTES);
                if let Ok(ClientFrame { body: Some(body), .. }) = ClientFrame::decode(frame) {
                    let _ = translate::to_command(body, OperatorId(1), &signer, 1_795_521_600_000);
                }
            }
            Ok(None) | Err(_) => break,
        }
    }
});
