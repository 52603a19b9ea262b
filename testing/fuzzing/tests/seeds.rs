//! The seeds reach past the first check of each parser: a seed that every parser refuses at
//! once would leave the fuzzer to rediscover the format, and the replay test would prove
//! little.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    path::Path,
    time::{Duration, UNIX_EPOCH},
};

use aws_smithy_eventstream::{frame::read_message_from, smithy::parse_response_headers};
use mangaassist_auth::JwtKey;
use mangaassist_fuzzing::{JWT_AUDIENCE, JWT_ISSUER, JWT_NOW_SECS, JWT_SECRET, JWT_SPLIT, sign};

fn seed(target: &str, name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target)
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_bedrock_seed_is_a_whole_converse_stream() {
    let data = seed("bedrock_event_stream", "whole");
    let mut rest = bytes::Bytes::copy_from_slice(&data[1..]);
    let mut events = Vec::new();
    while !rest.is_empty() {
        let message = read_message_from(&mut rest).unwrap();
        let headers = parse_response_headers(&message).unwrap();
        events.push(headers.smithy_type.as_str().to_string());
    }
    assert_eq!(
        events,
        [
            "messageStart",
            "contentBlockDelta",
            "contentBlockStop",
            "messageStop",
            "metadata"
        ]
    );
}

#[test]
fn the_sse_seed_carries_every_event_kind_to_done() {
    let data = seed("sse", "whole");
    let mut parser = mangaassist_generation::SseParser::default();
    let mut events = parser.push(&data[1..]).unwrap();
    events.extend(parser.finish());
    assert_eq!(events.len(), 6, "{events:?}");
    assert_eq!(events[3], "a\nb");
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
}

#[test]
fn the_signed_jwt_seed_verifies_so_the_claims_checks_are_reached() {
    let data = seed("jwt", "signed_valid");
    assert_eq!(data[0] & 1, 1, "odd first byte = signed mode");
    let split = data.iter().position(|&b| b == JWT_SPLIT).unwrap();
    let token = sign(&data[1..split], &data[split + 1..]);
    let key = JwtKey::new(JWT_SECRET)
        .unwrap()
        .with_issuer(JWT_ISSUER)
        .with_audience(JWT_AUDIENCE);
    let now = UNIX_EPOCH + Duration::from_secs(JWT_NOW_SECS);
    assert_eq!(key.verify(&token, now, Duration::ZERO).unwrap().sub, "u-1");
}
