//! Two customers, every cacheable intent: an answer written from one customer's profile,
//! history or orders is never shown to the other, on the embedded cache and on Redis; and a
//! session id sent by someone else gets `forbidden`, never the session's cached answers.

mod common;

use common::{TestMesh, WsClient};
use mangaassist_config::Config;
use mangaassist_protocol::ErrorCode;
use mangaassist_testkit::RedisServer;

/// One question per cacheable intent (`gateway.cacheable_intents`).
const QUESTIONS: [(&str, &str); 5] = [
    ("greeting", "hello"),
    ("faq", "How long does shipping take?"),
    ("recommendation", "Can you recommend a manga for me?"),
    ("product_search", "Do you have One Piece volume 1?"),
    ("comparison", "Compare One Piece and Naruto"),
];

/// What only Aiko's own context holds: her name and her earlier question.
const AIKO_ONLY: [&str; 2] = ["Aiko", "Hanako"];

async fn never_shared(tweak: impl FnOnce(&mut Config)) {
    let m = TestMesh::start_with(&[], |c| {
        // Follow-up prediction writes more entries; this test is about the live answers.
        c.gateway.predict_follow_ups = false;
        // Aiko asks again until her answer is cached, which takes more asks on a loaded
        // machine; the rate limit is not what this test is about.
        c.gateway.limits.user_messages_per_minute = 0;
        tweak(c);
    })
    .await;
    let mut aiko = WsClient::connect(&m.ws_url_as("u-aiko")).await;
    let mut kenji = WsClient::connect(&m.ws_url_as("u-kenji")).await;
    aiko.ask(
        "Is there a gift wrapping option for my sister Hanako?",
        "s-aiko",
    )
    .await
    .done();
    let mut personal_seen = 0;
    for (intent, q) in QUESTIONS {
        let first = aiko.ask(q, "s-aiko").await;
        assert_eq!(first.done().intent, intent, "{q}: {:?}", first.done());
        if AIKO_ONLY.iter().any(|w| first.text().contains(w)) {
            personal_seen += 1;
        }
        // Her answer is written to the cache after `done` (behind the turn save): ask again
        // until she is served from it, so the cache surely holds it when Kenji asks. Bounded
        // by time, not by attempts: an answer takes a few milliseconds now, so fifty attempts
        // can all come before a slow disk has saved the turn.
        let mut cached = false;
        let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::time::Instant::now() < until {
            if aiko.ask(q, "s-aiko").await.done().cache_hit {
                cached = true;
                break;
            }
            m.wait_for_turns("s-aiko", "u-aiko", 2).await;
        }
        assert!(cached, "{intent}: Aiko's answer never reached the cache");
        let theirs = kenji.ask(q, "s-kenji").await;
        let done = theirs.done();
        assert_eq!(done.intent, intent, "{q}: {done:?}");
        for w in AIKO_ONLY {
            assert!(
                !theirs.text().contains(w),
                "{intent}: Kenji was shown Aiko's `{w}` (cache_hit {}): {}",
                done.cache_hit,
                theirs.text()
            );
        }
        // Someone else's session: refused before any of its cached answers.
        let hijack = kenji.ask(q, "s-aiko").await;
        assert_eq!(
            hijack.error_code(),
            Some(ErrorCode::Forbidden),
            "{intent}: {:?}",
            hijack.types()
        );
        assert_eq!(hijack.text(), "", "{intent}");
    }
    // The test means something only if some of Aiko's answers were personal.
    assert!(personal_seen >= 2, "only {personal_seen} personal answers");
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn personal_answers_stay_with_their_customer_on_the_embedded_cache() {
    never_shared(|_| {}).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn personal_answers_stay_with_their_customer_on_redis() {
    let redis = RedisServer::start();
    never_shared(|c| {
        c.cache.backend = mangaassist_config::CacheBackend::Redis;
        c.redis.url = redis.url();
    })
    .await;
}
