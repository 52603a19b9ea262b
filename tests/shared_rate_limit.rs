//! Issue 14, item 7: with `gateway.limits.backend = "redis"` a user's message allowance is one
//! allowance, whichever gateway the messages go to (a real redis-server, two gateways).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{TestMesh, WsClient};
use mangaassist::mesh::{self, Role};
use mangaassist_config::LimitBackend;
use mangaassist_protocol::ErrorCode;
use mangaassist_testkit::RedisServer;

/// Asks on `c` and says whether the answer was refused by the rate limit.
async fn limited(c: &mut WsClient, n: usize) -> bool {
    let a = c
        .ask("How long does shipping take?", &format!("s-{n}"))
        .await;
    match a.error_code() {
        Some(ErrorCode::RateLimited) => true,
        None => false,
        Some(other) => panic!("message {n}: unexpected {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_spend_one_allowance_through_redis() {
    let redis = RedisServer::start();
    let url = redis.url();
    let m = TestMesh::start_with(&[], |c| {
        c.redis.url = url;
        c.gateway.limits.backend = LimitBackend::Redis;
        c.gateway.limits.user_messages_per_minute = 4;
        c.gateway.predict_follow_ups = false;
    })
    .await;
    // A second gateway in front of the same daemons and the same Redis.
    let mut config_b = m.mesh().config.clone();
    config_b.gateway.listen = "127.0.0.1:0".into();
    config_b.gateway.internal_listen = "127.0.0.1:0".into();
    let b = mesh::start(config_b, &[Role::Gateway]).await.unwrap();
    let token = m.ticket("u-spread");
    let mut on_a = WsClient::connect(&format!("{}?token={token}", m.ws_url())).await;
    let mut on_b = WsClient::connect(&format!("{}?token={token}", b.ws_url().unwrap())).await;
    // Four messages spread over both gateways are the whole allowance...
    for n in 0..4 {
        let c = if n % 2 == 0 { &mut on_a } else { &mut on_b };
        assert!(!limited(c, n).await, "message {n} refused");
    }
    // ...so the fifth is refused on either, where per-process limits would allow 4 more.
    assert!(limited(&mut on_a, 4).await);
    assert!(limited(&mut on_b, 5).await);
    // Another user has an allowance of their own.
    let mut other = WsClient::connect(&m.ws_url_as("u-other")).await;
    assert!(!limited(&mut other, 6).await);
    // The state lives in Redis, one key per limited user.
    let keys = redis.command(&["KEYS", "mangaassist:limit:user:*"]);
    assert!(
        keys.contains("u-spread") && keys.contains("u-other"),
        "{keys}"
    );
    b.stop().await.unwrap();
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_whose_redis_goes_away_still_limits_and_answers() {
    let mut redis = RedisServer::start();
    let url = redis.url();
    let m = TestMesh::start_with(&[], |c| {
        c.redis.url = url;
        c.redis.timeout_ms = 200;
        c.gateway.limits.backend = LimitBackend::Redis;
        c.gateway.limits.user_messages_per_minute = 2;
        c.gateway.predict_follow_ups = false;
    })
    .await;
    redis.kill();
    let mut c = WsClient::connect(&m.ws_url_as("u-outage")).await;
    // Counted by the gateway itself meanwhile: answered, then limited.
    assert!(!limited(&mut c, 0).await);
    assert!(!limited(&mut c, 1).await);
    assert!(limited(&mut c, 2).await);
    m.stop().await;
}
