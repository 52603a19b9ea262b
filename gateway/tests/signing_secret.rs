//! Where the gateway's signing secret comes from and what its tokens must carry: a secret
//! published in this repository is refused wherever it comes from, a fresh state folder gets a
//! private random secret, and tokens carry and are checked for `iss` and `aud`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mangaassist_auth::JwtKey;
use mangaassist_config::Config;
use mangaassist_gateway::{issue_token, resolve_secret, signing_key};

/// Every secret the repository has shipped: the once-committed `.mangaassist/state/jwt.secret`,
/// the old compose default and the old k8s placeholder.
const SHIPPED: [&str; 3] = [
    "7f00ec2a0ab1255b1bd129973b2ad08ed5cc749b6114ed98d49d5213598ff985",
    "change-me-dev-only-secret-0123456789abcdef",
    "CHANGE-ME-placeholder-jwt-secret-not-for-production",
];

fn config(state: &std::path::Path) -> Config {
    let mut c = Config::default();
    c.data.state_dir = state.to_path_buf();
    c
}

#[test]
fn a_published_secret_in_the_config_is_refused() {
    let state = tempfile::tempdir().unwrap();
    for secret in SHIPPED {
        let mut c = config(state.path());
        c.gateway.auth.secret = secret.into();
        let err = resolve_secret(&c).unwrap_err().to_string();
        assert!(
            err.contains("published") && err.contains("gateway.auth.secret"),
            "{err}"
        );
        assert!(issue_token(&c, "u1").is_err());
    }
}

#[test]
fn a_published_secret_in_a_private_file_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    for (i, secret) in SHIPPED.iter().enumerate() {
        let path = dir.path().join(format!("shipped-{i}.secret"));
        std::fs::write(&path, format!("{secret}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let mut c = config(dir.path());
        c.gateway.auth.secret_file = path;
        let err = resolve_secret(&c).unwrap_err().to_string();
        assert!(
            err.contains("published") && err.contains(&format!("shipped-{i}.secret")),
            "{err}"
        );
    }
}

#[test]
fn a_fresh_state_folder_gets_a_private_secret_and_tokens_carry_iss_and_aud() {
    let state = tempfile::tempdir().unwrap();
    let c = config(state.path());
    let token = issue_token(&c, "u-fresh").unwrap();
    let path = state.path().join("jwt.secret");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(
        !SHIPPED
            .iter()
            .any(|s| s.as_bytes() == resolve_secret(&c).unwrap())
    );

    let payload = URL_SAFE_NO_PAD
        .decode(token.split('.').nth(1).unwrap())
        .unwrap();
    let claims: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(claims["iss"], "mangaassist");
    assert_eq!(claims["aud"], "mangaassist-gateway");

    let key = signing_key(&c).unwrap();
    let now = SystemTime::now();
    assert_eq!(
        key.verify(&token, now, Duration::ZERO).unwrap().sub,
        "u-fresh"
    );

    // Signed with the gateway's own secret but missing or naming another iss/aud: refused.
    let secret = resolve_secret(&c).unwrap();
    let bare = JwtKey::new(&secret).unwrap();
    let cases = [
        (bare.clone(), "bad_issuer"),
        (bare.clone().with_issuer("mangaassist"), "bad_audience"),
        (
            bare.clone()
                .with_issuer("mangaassist")
                .with_audience("mangaassist-admin"),
            "bad_audience",
        ),
        (
            bare.clone()
                .with_issuer("someone-else")
                .with_audience("mangaassist-gateway"),
            "bad_issuer",
        ),
    ];
    for (other, code) in cases {
        let token = other
            .issue("u-fresh", Duration::from_secs(60), now)
            .unwrap();
        let err = key.verify(&token, now, Duration::ZERO).unwrap_err();
        assert_eq!(err.code(), code, "{other:?}: {err}");
    }
}

#[test]
fn issuer_and_audience_follow_the_config() {
    let state = tempfile::tempdir().unwrap();
    let mut c = config(state.path());
    c.gateway.auth.issuer = "shop".into();
    c.gateway.auth.audience = "shop-gateway".into();
    let key = signing_key(&c).unwrap();
    assert_eq!(
        (key.issuer(), key.audience()),
        (Some("shop"), Some("shop-gateway"))
    );
    let token = issue_token(&c, "u1").unwrap();
    key.verify(&token, SystemTime::now(), Duration::ZERO)
        .unwrap();
    // A token for the default audience is not one for this gateway.
    let default_token = issue_token(&config(state.path()), "u1").unwrap();
    let err = key
        .verify(&default_token, SystemTime::now(), Duration::ZERO)
        .unwrap_err();
    assert_eq!(err.code(), "bad_issuer", "{err}");
}
