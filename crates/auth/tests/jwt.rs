//! Token issue/verify against the RFC 7515 vector, tampering, algorithm confusion, expiry, and
//! arbitrary input.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mangaassist_auth::{AuthError, Claims, JwtKey, MAX_TOKEN_LEN, bearer_token};
use proptest::prelude::*;

/// RFC 7515 Appendix A.1: an HS256 JWS with its symmetric JWK `k`.
const RFC_TOKEN: &str = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const RFC_KEY: &str =
    "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";
/// The vector's exp; a `now` before it keeps the expiry check out of the way.
const RFC_EXP: u64 = 1_300_819_380;

fn rfc_key() -> JwtKey {
    JwtKey::new(&URL_SAFE_NO_PAD.decode(RFC_KEY).unwrap()).unwrap()
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

const NOW: u64 = 1_750_000_000;

fn key() -> JwtKey {
    JwtKey::new(b"0123456789abcdef0123456789abcdef").unwrap()
}

#[test]
fn rfc7515_a1_signature_verifies_and_its_claims_lack_a_subject() {
    // The signature checks out (otherwise BadSignature), the claims parse, and the vector has
    // no `sub`, which our tokens require.
    let err = rfc_key()
        .verify(RFC_TOKEN, at(RFC_EXP - 1), Duration::ZERO)
        .unwrap_err();
    assert!(matches!(err, AuthError::MissingSubject), "{err}");
}

#[test]
fn rfc7515_a1_with_another_key_or_a_flipped_signature_is_refused() {
    let err = key()
        .verify(RFC_TOKEN, at(RFC_EXP - 1), Duration::ZERO)
        .unwrap_err();
    assert!(matches!(err, AuthError::BadSignature), "{err}");

    // Swap the signature's first character: still valid base64url, wrong MAC.
    let (signing_input, signature) = RFC_TOKEN.rsplit_once('.').unwrap();
    let tampered = format!("{signing_input}.e{}", &signature[1..]);
    let err = rfc_key()
        .verify(&tampered, at(RFC_EXP - 1), Duration::ZERO)
        .unwrap_err();
    assert!(matches!(err, AuthError::BadSignature), "{err}");
}

#[test]
fn round_trip() {
    let k = key();
    let token = k
        .issue("user-42", Duration::from_secs(3600), at(NOW))
        .unwrap();
    assert_eq!(token.split('.').count(), 3);
    let claims = k.verify(&token, at(NOW + 10), Duration::ZERO).unwrap();
    assert_eq!(
        claims,
        Claims {
            sub: "user-42".into(),
            iat: NOW,
            exp: NOW + 3600,
            iss: None,
            aud: None,
            scope: None,
        }
    );
    // Header says what it is.
    let header = URL_SAFE_NO_PAD
        .decode(token.split('.').next().unwrap())
        .unwrap();
    let header: serde_json::Value = serde_json::from_slice(&header).unwrap();
    assert_eq!(header["alg"], "HS256");
    assert_eq!(header["typ"], "JWT");
}

#[test]
fn tampered_payload_is_refused() {
    let k = key();
    let token = k
        .issue("alice", Duration::from_secs(3600), at(NOW))
        .unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    let forged = URL_SAFE_NO_PAD.encode(format!(
        r#"{{"sub":"admin","iat":{NOW},"exp":{}}}"#,
        NOW + 3600
    ));
    let tampered = format!("{}.{forged}.{}", parts[0], parts[2]);
    let err = k.verify(&tampered, at(NOW), Duration::ZERO).unwrap_err();
    assert!(matches!(err, AuthError::BadSignature), "{err}");
    assert_eq!(err.code(), "bad_signature");

    // A token signed by another key.
    let other = JwtKey::new(&[1u8; 32])
        .unwrap()
        .issue("alice", Duration::from_secs(3600), at(NOW))
        .unwrap();
    assert!(matches!(
        k.verify(&other, at(NOW), Duration::ZERO),
        Err(AuthError::BadSignature)
    ));
}

#[test]
fn alg_none_is_refused_with_or_without_a_signature() {
    let k = key();
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(format!(
        r#"{{"sub":"admin","iat":{NOW},"exp":{}}}"#,
        NOW + 3600
    ));
    for token in [
        format!("{header}.{payload}."),
        format!("{header}.{payload}.c2ln"),
    ] {
        let err = k.verify(&token, at(NOW), Duration::ZERO).unwrap_err();
        match err {
            AuthError::UnsupportedAlgorithm(ref what) => assert!(what.contains("none"), "{err}"),
            other => panic!("expected UnsupportedAlgorithm, got {other}"),
        }
    }
}

#[test]
fn expiry_honours_leeway() {
    let k = key();
    let token = k.issue("u", Duration::from_secs(60), at(NOW)).unwrap();
    k.verify(&token, at(NOW + 59), Duration::ZERO).unwrap();
    let err = k.verify(&token, at(NOW + 60), Duration::ZERO).unwrap_err();
    assert!(
        matches!(err, AuthError::Expired { expired_at } if expired_at == NOW + 60),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        format!("token expired at {} (unix seconds)", NOW + 60)
    );
    k.verify(&token, at(NOW + 89), Duration::from_secs(30))
        .unwrap();
    assert!(matches!(
        k.verify(&token, at(NOW + 90), Duration::from_secs(30)),
        Err(AuthError::Expired { .. })
    ));
}

#[test]
fn sub_ttl_rounds_up_to_a_whole_second() {
    let k = key();
    let token = k.issue("u", Duration::from_millis(1), at(NOW)).unwrap();
    assert_eq!(
        k.verify(&token, at(NOW), Duration::ZERO).unwrap().exp,
        NOW + 1
    );
}

#[test]
fn subjects_are_validated_on_issue() {
    let k = key();
    for bad in ["", "a\nb", "tab\there", &"x".repeat(129)] {
        let err = k.issue(bad, Duration::from_secs(60), at(NOW)).unwrap_err();
        assert!(matches!(err, AuthError::BadSubject(_)), "{bad:?}: {err}");
    }
    // 128 characters, multi-byte: the limit counts characters, not bytes.
    let long = "漫".repeat(128);
    let token = k.issue(&long, Duration::from_secs(60), at(NOW)).unwrap();
    assert_eq!(k.verify(&token, at(NOW), Duration::ZERO).unwrap().sub, long);
}

#[test]
fn short_secrets_are_refused_and_debug_hides_the_secret() {
    let err = JwtKey::new(&[0u8; 31]).unwrap_err();
    assert!(
        matches!(err, AuthError::SecretTooShort { len: 31 }),
        "{err}"
    );
    let secret = "super-secret-value-0123456789abcdef";
    let k = JwtKey::new(secret.as_bytes()).unwrap();
    let debug = format!("{k:?}");
    assert!(!debug.contains("super-secret"), "{debug}");
    assert!(debug.contains("redacted"), "{debug}");
}

#[test]
fn oversized_and_misshapen_tokens_are_malformed() {
    let k = key();
    let huge = "a".repeat(MAX_TOKEN_LEN + 1);
    let err = k.verify(&huge, at(NOW), Duration::ZERO).unwrap_err();
    assert!(matches!(err, AuthError::Malformed(_)), "{err}");
    let valid = k.issue("u", Duration::from_secs(60), at(NOW)).unwrap();
    for bad in [
        String::new(),
        "a.b".into(),
        "a.b.c.d.e".into(),
        format!("{valid}."),
        format!(" {valid}"),
        format!("{valid}="),
        valid.replacen('.', "..", 1),
    ] {
        let err = k.verify(&bad, at(NOW), Duration::ZERO).unwrap_err();
        assert!(matches!(err, AuthError::Malformed(_)), "{bad:?}: {err}");
    }
}

#[test]
fn bearer_header_parsing() {
    assert_eq!(bearer_token("Bearer abc.def.ghi"), Some("abc.def.ghi"));
    assert_eq!(bearer_token("bearer abc"), Some("abc"));
    assert_eq!(bearer_token("BEARER  abc "), Some("abc"));
    assert_eq!(bearer_token("Basic dXNlcjpwYXNz"), None);
    assert_eq!(bearer_token("Bearer"), None);
    assert_eq!(bearer_token("Bearer "), None);
    assert_eq!(bearer_token("Bearer a b"), None);
    assert_eq!(bearer_token("Bearerabc"), None);
    assert_eq!(bearer_token(""), None);
}

proptest! {
    #[test]
    fn arbitrary_strings_never_verify_or_panic(s in ".{0,600}") {
        prop_assert!(key().verify(&s, at(NOW), Duration::ZERO).is_err());
    }

    #[test]
    fn arbitrary_three_part_tokens_never_verify_or_panic(
        header in proptest::collection::vec(any::<u8>(), 0..80),
        payload in proptest::collection::vec(any::<u8>(), 0..200),
        signature in proptest::collection::vec(any::<u8>(), 0..40),
    ) {
        let token = format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(&header),
            URL_SAFE_NO_PAD.encode(&payload),
            URL_SAFE_NO_PAD.encode(&signature),
        );
        prop_assert!(key().verify(&token, at(NOW), Duration::ZERO).is_err());
    }

    #[test]
    fn any_single_character_change_breaks_a_valid_token(
        index in any::<proptest::sample::Index>(),
        replacement in proptest::char::range('+', 'z'),
    ) {
        let k = key();
        let token = k.issue("user-1", Duration::from_secs(3600), at(NOW)).unwrap();
        let i = index.index(token.len());
        let original = token.as_bytes()[i] as char;
        prop_assume!(replacement != original);
        let mut mutated = token.clone();
        mutated.replace_range(i..=i, &replacement.to_string());
        prop_assert!(k.verify(&mutated, at(NOW), Duration::ZERO).is_err());
    }
}
