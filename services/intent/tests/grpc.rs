//! The intent daemon over real gRPC: started on an ephemeral port, called through the typed
//! client of `mangaassist-client`.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(
    clippy::disallowed_methods,
    reason = "tasks a test spawns end with its runtime; there is no daemon shutdown to drain"
)]

use std::{path::PathBuf, sync::Arc, time::Duration};

use mangaassist_client::IntentClient;
use mangaassist_config::Config;
use mangaassist_embedding::{Embedder, HashedNgrams, QueryEmbedder};
use mangaassist_intent::IntentDaemon;
use mangaassist_proto::v1 as pb;
use mangaassist_server::ServeOptions;

const DEADLINE: Duration = Duration::from_secs(10);

async fn start() -> (IntentClient, ServeOptions, tempfile::TempDir) {
    let cache = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.data.dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data");
    config.data.cache_dir = cache.path().to_path_buf();
    let embedder = QueryEmbedder::new(Arc::new(HashedNgrams::default()), 256);
    let daemon = IntentDaemon::new(&config, embedder).await.unwrap();
    let (listener, addr) = mangaassist_server::bind_with_addr("127.0.0.1:0")
        .await
        .unwrap();
    let opts = ServeOptions::for_tests();
    tokio::spawn(daemon.serve(listener, opts.clone()));
    let client = IntentClient::connect(&format!("http://{addr}")).unwrap();
    (client, opts, cache)
}

fn request(text: &str) -> pb::ClassifyRequest {
    pb::ClassifyRequest {
        text: text.into(),
        store_id: "manga_jp".into(),
        session_id: "s-1".into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn classify_over_grpc_with_and_without_embedding() {
    let (client, opts, _cache) = start().await;

    let plain = client
        .classify(request("Where is my order MA-100234?"), DEADLINE)
        .await
        .unwrap();
    assert_eq!(plain.intent, pb::Intent::OrderStatus as i32);
    assert_eq!(plain.classifier, "logreg-hashed-v1");
    assert_eq!(plain.scores.len(), 9);
    assert!(plain.scores.windows(2).all(|w| w[0].score >= w[1].score));
    assert_eq!(plain.tier, pb::ModelTier::Fast as i32);
    assert!(!plain.needs_retrieval);

    // The caller's vector (same model) is used: the same text with its own vector gives
    // the same answer as re-embedding.
    let vector = HashedNgrams::default()
        .embed("where is my order ma-100234?")
        .unwrap();
    let mut with = request("Where is my order MA-100234?");
    with.embedding = Some(pb::Embedding {
        values: vector,
        model: "hashed-ngrams-384".into(),
    });
    let supplied = client.classify(with, DEADLINE).await.unwrap();
    assert_eq!(supplied.intent, plain.intent);
    assert!((supplied.confidence - plain.confidence).abs() < 1e-5);

    let cmp = client
        .classify(
            pb::ClassifyRequest {
                remaining_budget_ms: 2_500,
                ..request("Naruto vs Bleach, which is better?")
            },
            DEADLINE,
        )
        .await
        .unwrap();
    assert_eq!(cmp.intent, pb::Intent::Comparison as i32);
    assert!(cmp.needs_retrieval);
    assert_eq!(cmp.tier, pb::ModelTier::Smart as i32);
    assert!(cmp.complexity > plain.complexity);

    opts.shutdown.cancel();
}

#[tokio::test]
async fn invalid_input_is_invalid_argument() {
    let (client, opts, _cache) = start().await;
    for bad in [String::new(), "  \t ".into(), "a".repeat(4097)] {
        let err = client.classify(request(&bad), DEADLINE).await.unwrap_err();
        assert_eq!(
            err.code(),
            tonic::Code::InvalidArgument,
            "{}",
            err.message()
        );
    }
    opts.shutdown.cancel();
}
