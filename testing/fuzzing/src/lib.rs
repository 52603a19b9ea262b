//! The bodies of the fuzz targets in `fuzz/` (run with `scripts/fuzz.sh`). They live in a
//! stable workspace crate, not in the nightly-only cargo-fuzz crate, so that
//! `tests/corpora.rs` replays every committed corpus input through exactly the code the
//! fuzzer ran, on every CI run, without nightly.
//!
//! Each body must never panic on any input: a panic is the bug signal. Beyond "does not
//! crash", each checks a property the parser promises (a re-encoded frame parses the same,
//! splitting a byte stream anywhere yields the same events, an accepted token carries the
//! issuer and audience the key demands), so the fuzzer also finds wrong answers.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "a failed expectation here is the fuzzer's crash signal"
)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_smithy_eventstream::{
    frame::{DecodedFrame, MessageFrameDecoder, read_message_from},
    smithy::parse_response_headers,
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use mangaassist_auth::JwtKey;
use mangaassist_generation::SseParser;
use mangaassist_protocol::{
    MAX_TEXT_CHARS, check_scope_ids, openai::parse_chat_request, parse_client_frame,
    parse_server_frame,
};

/// A target body: takes any bytes, panics only on a bug.
pub type Target = fn(&[u8]);

/// The targets, by the name of their `fuzz/fuzz_targets/<name>.rs` and corpus folder.
pub const TARGETS: [(&str, Target); 5] = [
    ("client_frame", client_frame),
    ("jwt", jwt),
    ("openai_request", openai_request),
    ("sse", sse),
    ("bedrock_event_stream", bedrock_event_stream),
];

/// The WebSocket frame parser (crates/protocol): strict on client frames, lenient on gateway
/// frames. An accepted client frame, encoded again, parses to the same frame (the terminal
/// client and the benchmark send what they parse).
pub fn client_frame(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(frame) = parse_client_frame(text) {
        let again = parse_client_frame(&frame.to_json()).expect("a re-encoded frame parses");
        assert_eq!(again, frame);
    }
    let _ = parse_server_frame(text);
}

/// The key every JWT input is checked against (32 bytes, the verifier's minimum).
pub const JWT_SECRET: &[u8] = b"fuzz-secret-fuzz-secret-fuzz-sec";
pub const JWT_ISSUER: &str = "mangaassist";
pub const JWT_AUDIENCE: &str = "mangaassist-chat";
/// "Now" for every JWT input: fixed, so a corpus input means the same thing on every run.
pub const JWT_NOW_SECS: u64 = 1_800_000_000;
/// Splits a signed-mode input into its header and claims JSON.
pub const JWT_SPLIT: u8 = 0xff;

/// The JWT verifier (crates/auth). The first byte picks the mode: even = the rest is a
/// token as a client sends it (almost always refused at the signature); odd = the rest is
/// `header JSON 0xff claims JSON`, which the target signs with the key, so the header and
/// claims checks behind the signature are fuzzed too. An accepted token must name the
/// issuer and audience the key demands and must not have expired.
pub fn jwt(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let key = JwtKey::new(JWT_SECRET)
        .expect("the fuzz secret is long enough")
        .with_issuer(JWT_ISSUER)
        .with_audience(JWT_AUDIENCE);
    let leeway = Duration::from_secs(u64::from(mode >> 1));
    let token = if mode & 1 == 0 {
        String::from_utf8_lossy(rest).into_owned()
    } else {
        let (header, claims) = match rest.iter().position(|&b| b == JWT_SPLIT) {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &[][..]),
        };
        sign(header, claims)
    };
    let now = UNIX_EPOCH + Duration::from_secs(JWT_NOW_SECS);
    if let Ok(claims) = key.verify(&token, now, leeway) {
        assert_eq!(claims.iss.as_deref(), Some(JWT_ISSUER));
        assert_eq!(claims.aud.as_deref(), Some(JWT_AUDIENCE));
        assert!(claims.exp.saturating_add(leeway.as_secs()) > JWT_NOW_SECS);
        assert!(!claims.sub.is_empty());
    }
    // Far-off clocks must not overflow the time arithmetic either.
    for secs in [0, u64::from(u32::MAX) * 1_000] {
        if let Some(at) = SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(secs)) {
            let _ = key.verify(&token, at, leeway);
        }
    }
}

/// A compact HS256 token over exactly these header and claims bytes, signed with
/// [`JWT_SECRET`] (for seeds and the signed mode of [`jwt`]).
pub fn sign(header: &[u8], claims: &[u8]) -> String {
    let mut token = URL_SAFE_NO_PAD.encode(header);
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(claims));
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(JWT_SECRET).expect("HMAC takes any key");
    mac.update(token.as_bytes());
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()));
    token
}

/// The OpenAI-compatible request parser (crates/protocol, used by the gateway's
/// `/v1/chat/completions`): what it accepts is a question the WebSocket would accept too.
pub fn openai_request(data: &[u8]) {
    if let Ok(query) = parse_chat_request(data) {
        assert!(!query.text.trim().is_empty());
        assert!(query.text.chars().count() <= MAX_TEXT_CHARS);
        let _ = check_scope_ids(
            query.request.session_id.as_deref(),
            query.request.store_id.as_deref(),
        );
    }
}

/// Cuts a stream at fuzzer-chosen points: the first byte says how many cuts (0-7), the next
/// that many bytes where (as a fraction of the rest); returns the pieces and the whole.
fn pieces(data: &[u8]) -> (Vec<&[u8]>, &[u8]) {
    let Some((&n, rest)) = data.split_first() else {
        return (Vec::new(), &[]);
    };
    let n = usize::from(n % 8).min(rest.len());
    let (cuts, body) = rest.split_at(n);
    let mut at: Vec<usize> = cuts
        .iter()
        .map(|&c| usize::from(c) * body.len() / 256)
        .collect();
    at.sort_unstable();
    let mut out = Vec::with_capacity(n + 1);
    let mut start = 0;
    for cut in at {
        out.push(&body[start..cut]);
        start = cut;
    }
    out.push(&body[start..]);
    (out, body)
}

/// The upstream server-sent-events parser of the OpenAI-compatible generation backend
/// (services/generation): the events must not depend on where the network split the bytes.
pub fn sse(data: &[u8]) {
    let (split, whole) = pieces(data);
    let mut one = SseParser::default();
    let Ok(mut expected) = one.push(whole) else {
        return;
    };
    expected.extend(one.finish());
    let mut parser = SseParser::default();
    let mut got = Vec::new();
    for piece in split {
        match parser.push(piece) {
            Ok(events) => got.extend(events),
            // A partial line over the cap is refused however the bytes arrived.
            Err(_) => return,
        }
    }
    got.extend(parser.finish());
    assert_eq!(got, expected);
}

/// The `application/vnd.amazon.eventstream` decoding that Bedrock ConverseStream responses go
/// through: the AWS SDK's streaming frame decoder (the same `aws-smithy-eventstream` the SDK
/// runs, fed the way its receiver feeds it, a network chunk at a time) and its header parsing.
/// The SDK's typed unmarshaller behind it is private to the SDK, so it is not reached here.
/// Frames must not depend on where the bytes were split.
pub fn bedrock_event_stream(data: &[u8]) {
    let (split, whole) = pieces(data);
    let mut decoder = MessageFrameDecoder::new();
    let mut pending: Vec<u8> = Vec::new();
    let mut streamed = Vec::new();
    'chunks: for piece in split {
        pending.extend_from_slice(piece);
        loop {
            let mut buf = &pending[..];
            let before = buf.len();
            let frame = decoder.decode_frame(&mut buf);
            let used = before - buf.len();
            pending.drain(..used);
            match frame {
                Ok(DecodedFrame::Complete(message)) => {
                    let _ = parse_response_headers(&message);
                    streamed.push(message);
                }
                Ok(DecodedFrame::Incomplete) => break,
                Err(_) => break 'chunks,
            }
        }
    }
    let mut rest = bytes::Bytes::copy_from_slice(whole);
    for message in &streamed {
        let at_once =
            read_message_from(&mut rest).expect("a frame decoded in pieces decodes whole");
        assert_eq!(&at_once, message);
    }
}
