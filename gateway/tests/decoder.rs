//! The untrusted-input path (frame split, ClientFrame decode, translation)
//! on arbitrary bytes and on valid frames with bytes flipped: it never
//! panics. The same body as the cargo-fuzz target `frame_decoder`, run
//! briefly by the test suite so it cannot rot.

use bytes::BytesMut;
use engine::OperatorId;
use gateway::auth::TokenSigner;
use gateway::frame::{encode_frame, split_frame, MAX_FRAME_BYTES};
use gateway::proto::{self, client_frame::Body, ClientFrame};
use gateway::translate;
use proptest::prelude::*;
use prost::Message;

fn consume(data: &[u8]) -> usize {
    let signer = TokenSigner::new([7; 32]);
    let mut buffer = BytesMut::from(data);
    let mut frames = 0;
    loop {
        match split_frame(&mut buffer) {
            Ok(Some(frame)) => {
                assert!(frame.len() <= MAX_FRAME_BYTES);
                frames += 1;
                if let Ok(ClientFrame { body: Some(body), .. }) = ClientFrame::decode(frame) {
                    let _ = translate::to_command(body, OperatorId(1), &signer, 1_795_521_600_000);
                }
            }
            Ok(None) | Err(_) => return frames,
        }
    }
}

fn valid_frames() -> Vec<u8> {
    let bodies = vec![
        Body::Deposit(proto::Deposit { player_id: 1, tx_id: "d-1".into(), currency: "EUR".into(), amount: 500 }),
        Body::Bet(proto::Bet {
            session_token: vec![1; 61],
            tx_id: "b".into(),
            round_id: "r".into(),
            game_id: "g".into(),
            currency: "EUR".into(),
            stake: Some(proto::Stake { kind: Some(proto::stake::Kind::Amount(100)) }),
        }),
        Body::SetLimit(proto::SetLimit { player_id: 1, source: 1, kind: 2, period: 3, currency: "EUR".into(), amount: Some(10) }),
        Body::Play(proto::Play {
            session_token: vec![],
            tx_id: "p".into(),
            currency: "EUR".into(),
            stake: 20,
            bet: "split:1,2".into(),
            provably_fair: true,
        }),
        Body::GrantBonus(proto::GrantBonus {
            player_id: 1,
            tx_id: "g".into(),
            bonus_id: "b".into(),
            currency: "EUR".into(),
            amount: 10,
            weights: vec![proto::GameWeight { game_id: "x".into(), percent: 300 }],
            ..Default::default()
        }),
    ];
    let mut bytes = Vec::new();
    for (id, body) in bodies.into_iter().enumerate() {
        encode_frame(&ClientFrame { request_id: id as u64, body: Some(body) }, &mut bytes);
    }
    bytes
}

#[test]
fn valid_frames_decode_whole() {
    assert_eq!(consume(&valid_frames()), 5);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, failure_persistence: None, .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..4_096)) {
        consume(&data);
    }

    #[test]
    fn corrupted_frames_never_panic(flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..16)) {
        let mut bytes = valid_frames();
        for (at, value) in flips {
            let at = at.index(bytes.len());
            bytes[at] = value;
        }
        consume(&bytes);
    }
}
