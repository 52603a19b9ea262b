//! End-to-end: the whole mesh in this process and a real WebSocket client, each case run twice:
//! with the gateway calling the daemons in process (`in_process::…`, the default when
//! co-located) and over real gRPC (`grpc::…`, as between pods).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Calls, TestMesh, catalog_titles, error_code};
use mangaassist::mesh::Role;
use mangaassist_protocol::{ClientFrame, ErrorCode, ServerFrame};
use tokio_tungstenite::tungstenite::Message;

async fn one_query_per_intent_streams_status_chunks_done(calls: Calls) {
    let m = TestMesh::start_calling(calls, &[]).await;
    let mut c = m.client().await;
    let cases = [
        ("Hello there!", "greeting"),
        (
            "How much is shipping to Osaka and is there a free shipping threshold?",
            "faq",
        ),
        (
            "Where is my order? When will my package arrive?",
            "order_status",
        ),
        (
            "Do you have Attack on Titan volume 3 in stock?",
            "product_search",
        ),
        ("Suggest manga like One Piece", "recommendation"),
        (
            "How does Naruto compare to Bleach? Which one is better?",
            "comparison",
        ),
        (
            "The volume I received was damaged and torn, this is unacceptable",
            "complaint",
        ),
        (
            "I want to return a book and get my money back",
            "return_refund",
        ),
    ];
    for (i, (text, intent)) in cases.iter().enumerate() {
        let a = c.ask(text, &format!("s-intent-{i}")).await;
        let types = a.types();
        assert!(
            matches!(a.frames.first(), Some(ServerFrame::Status { .. })),
            "{text}: {types:?}"
        );
        assert!(
            matches!(a.frames.last(), Some(ServerFrame::Done(_))),
            "{text}: {types:?}"
        );
        assert!(
            types.iter().filter(|t| **t == "chunk").count() >= 1,
            "{text}: no chunks"
        );
        // Chunk indexes are 0..n in order.
        let idx = a.chunk_indexes();
        assert_eq!(idx, (0..idx.len() as u32).collect::<Vec<_>>());
        let done = a.done();
        assert_eq!(done.intent, *intent, "{text}: {done:?}");
        assert_eq!(done.degradation, "full", "{text}: {done:?}");
        assert!(!done.trace_id.is_empty());
        assert!(done.first_token_ms <= done.total_ms);
    }
    m.stop().await;
}

async fn recommendation_names_real_catalog_titles(calls: Calls) {
    let m = TestMesh::start_calling(calls, &[]).await;
    let mut c = m.client().await;
    let a = c.ask("Suggest manga like One Piece", "s-rec").await;
    let text = a.text();
    let titles = catalog_titles();
    let mentioned: Vec<&String> = titles
        .iter()
        .filter(|(_, t, _)| text.contains(t.as_str()))
        .map(|(_, t, _)| t)
        .collect();
    assert!(!mentioned.is_empty(), "no catalog title in: {text}");
    let ids = &a.done().product_ids;
    assert!(!ids.is_empty(), "done lists no products");
    for id in ids {
        assert!(
            titles.iter().any(|(pid, _, _)| pid == id),
            "unknown product id {id}"
        );
    }
    m.stop().await;
}

async fn order_status_reads_the_users_orders(calls: Calls) {
    let m = TestMesh::start_calling(calls, &[]).await;
    let mut c = m.client().await;
    let a = c.ask("Where is my order?", "s-order").await;
    assert_eq!(a.done().intent, "order_status");
    let text = a.text();
    assert!(text.contains("MA-1"), "no order id of u-demo in: {text}");
    m.stop().await;
}

async fn repeated_question_is_a_cache_hit(calls: Calls) {
    let m = TestMesh::start_calling(calls, &[]).await;
    let mut c = m.client().await;
    let q = "What payment methods do you accept?";
    let first = c.ask(q, "s-cache-1").await;
    assert!(!first.done().cache_hit);
    // The cache write happens off the critical path: poll the cache daemon until it lands.
    let cache = mangaassist_client::CacheClient::connect(&format!(
        "http://{}",
        m.mesh().addrs[&Role::Cache]
    ))
    .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while cache.stats(Duration::from_secs(1)).await.unwrap().entries == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "answer never cached"
        );
        tokio::task::yield_now().await;
    }
    let second = c.ask(q, "s-cache-2").await;
    let done = second.done();
    assert!(done.cache_hit, "{done:?}");
    assert_eq!(second.text(), first.text());
    m.stop().await;
}

async fn hung_retrieval_still_answers_degraded_within_its_deadline(calls: Calls) {
    let m = TestMesh::start_calling(calls, &["retrieval=hang"]).await;
    let deadline_ms = m.mesh().config.gateway.deadlines.retrieval_ms;
    let mut c = m.client().await;
    let a = c
        .ask("Do you have Attack on Titan volume 3 in stock?", "s-hang")
        .await;
    let done = a.done();
    assert_eq!(done.degradation, "no_rag", "{done:?}");
    assert!(!a.text().is_empty());
    // The answer waited for the retrieval deadline, not longer (generous ε for 2 shared cores).
    let total = done.total_ms;
    assert!(total < deadline_ms + 1_500, "total {total} ms");
    m.stop().await;
}

async fn dead_generation_gives_a_canned_answer_and_dead_intent_the_keyword_fallback(calls: Calls) {
    let m = TestMesh::start_calling(calls, &["generation=error:1.0", "intent=error:1.0"]).await;
    let mut c = m.client().await;
    let a = c.ask("Where is my order?", "s-dead").await;
    let done = a.done();
    assert_eq!(done.degradation, "canned", "{done:?}");
    assert_eq!(done.model, "canned");
    assert_eq!(
        done.intent, "order_status",
        "keyword fallback classified it: {done:?}"
    );
    assert!(a.text().contains("Orders"), "{}", a.text());
    m.stop().await;
}

async fn dead_cache_and_memory_still_give_a_full_answer(calls: Calls) {
    let m = TestMesh::start_calling(calls, &["cache=error:1.0", "memory=error:1.0"]).await;
    let mut c = m.client().await;
    let a = c.ask("Suggest manga like One Piece", "s-nomem").await;
    let done = a.done();
    assert_eq!(done.degradation, "full", "{done:?}");
    assert!(!a.text().is_empty());
    m.stop().await;
}

async fn bad_frames_get_error_frames_and_the_connection_stays_usable(calls: Calls) {
    let m = TestMesh::start_calling(calls, &[]).await;
    let mut c = m.client().await;
    c.send_raw(Message::Text("{not json".into())).await;
    assert_eq!(error_code(&c.next_frame().await), Some(ErrorCode::BadJson));
    c.send_raw(Message::Text(r#"{"action":"dance"}"#.into()))
        .await;
    assert_eq!(
        error_code(&c.next_frame().await),
        Some(ErrorCode::UnknownAction)
    );
    c.send_raw(Message::Text(r#"{"action":"query"}"#.into()))
        .await;
    assert_eq!(
        error_code(&c.next_frame().await),
        Some(ErrorCode::BadRequest)
    );
    c.send_raw(Message::Binary(vec![1, 2, 3].into())).await;
    assert_eq!(
        error_code(&c.next_frame().await),
        Some(ErrorCode::UnsupportedFrame)
    );
    let big = format!(
        r#"{{"action":"query","text":"{}"}}"#,
        "a".repeat(129 * 1024)
    );
    c.send_raw(Message::Text(big.into())).await;
    assert_eq!(
        error_code(&c.next_frame().await),
        Some(ErrorCode::FrameTooLarge)
    );
    c.send(&ClientFrame::Ping {}).await;
    assert_eq!(c.next_frame().await, ServerFrame::Pong);
    let a = c.ask("Hello!", "s-after-errors").await;
    assert_eq!(a.done().intent, "greeting");
    m.stop().await;
}

async fn history_is_kept_across_messages_of_a_session(calls: Calls) {
    let m = TestMesh::start_calling(calls, &[]).await;
    let mut c = m.client().await;
    c.ask("Suggest manga like One Piece", "s-hist").await;
    let turns = m.wait_for_turns("s-hist", "u-demo", 2).await;
    assert_eq!(turns.len(), 2);
    assert_eq!(turns[0].role, "assistant", "newest first");
    assert_eq!(turns[1].text, "Suggest manga like One Piece");
    m.stop().await;
}

/// Each case as a test in each mode. A mesh starts in about a second here, so both modes run
/// every case (~10 s more than one mode).
macro_rules! in_both_modes {
    ($($case:ident),* $(,)?) => {
        mod in_process {
            use super::Calls;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(Calls::InProcess).await;
                }
            )*
        }
        mod grpc {
            use super::Calls;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(Calls::Grpc).await;
                }
            )*
        }
    };
}

in_both_modes!(
    one_query_per_intent_streams_status_chunks_done,
    recommendation_names_real_catalog_titles,
    order_status_reads_the_users_orders,
    repeated_question_is_a_cache_hit,
    hung_retrieval_still_answers_degraded_within_its_deadline,
    dead_generation_gives_a_canned_answer_and_dead_intent_the_keyword_fallback,
    dead_cache_and_memory_still_give_a_full_answer,
    bad_frames_get_error_frames_and_the_connection_stays_usable,
    history_is_kept_across_messages_of_a_session,
);
