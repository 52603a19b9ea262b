//! Resuming from any cut point yields exactly the chunks after it, then the terminal frame,
//! while a producer is still appending concurrently.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(
    clippy::disallowed_methods,
    reason = "tasks a test spawns end with its runtime; there is no daemon shutdown to drain"
)]

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use mangaassist_resume::{
    BufferedFrame, InMemoryResumeStore, ResumeLimits, ResumeStore, StreamKey, replay_stream,
};
use proptest::prelude::*;

fn chunk_json(i: usize, text: &str) -> String {
    format!("{{\"type\":\"chunk\",\"index\":{i},\"text\":{text:?}}}")
}

const TERMINAL: &str = r#"{"type":"done"}"#;

/// Runs one producer/reader pair and checks what the reader got.
///
/// `cut` is the client's `last_chunk_idx` (None = it saw nothing); `yields[i]` makes the producer
/// yield after chunk i so readers observe many different interleavings; with `reader_first`
/// false the reader only starts once the answer finished.
async fn resume_case(texts: Vec<String>, cut: Option<u32>, yields: Vec<bool>, reader_first: bool) {
    let store = InMemoryResumeStore::new(ResumeLimits::default());
    let key = StreamKey::new("session", "message");
    store.open(&key, "user").await.unwrap();

    let producer = {
        let (store, key, texts) = (store.clone(), key.clone(), texts.clone());
        tokio::spawn(async move {
            for (i, text) in texts.iter().enumerate() {
                store
                    .append(&key, BufferedFrame::chunk(i as u32, chunk_json(i, text)))
                    .await
                    .unwrap();
                if yields.get(i).copied().unwrap_or(false) {
                    tokio::task::yield_now().await;
                }
            }
            store
                .append(&key, BufferedFrame::terminal(TERMINAL))
                .await
                .unwrap();
        })
    };
    let mut producer = Some(producer);
    if !reader_first && let Some(p) = producer.take() {
        p.await.unwrap();
    }
    let dyn_store: Arc<dyn ResumeStore> = Arc::new(store.clone());
    let reader = tokio::spawn(
        replay_stream(dyn_store, key, "user".into(), cut, Duration::from_secs(5))
            .collect::<Vec<_>>(),
    );
    let got = tokio::time::timeout(Duration::from_secs(30), reader)
        .await
        .expect("the replay must end after the terminal frame")
        .unwrap();
    if let Some(p) = producer {
        p.await.unwrap();
    }

    let first = cut.map_or(0, |c| c as usize + 1);
    let mut expected: Vec<BufferedFrame> = texts
        .iter()
        .enumerate()
        .skip(first)
        .map(|(i, t)| BufferedFrame::chunk(i as u32, chunk_json(i, t)))
        .collect();
    expected.push(BufferedFrame::terminal(TERMINAL));
    let got: Vec<BufferedFrame> = got.into_iter().map(|r| r.unwrap()).collect();
    assert_eq!(
        got,
        expected,
        "cut {cut:?} of {} chunks, reader_first {reader_first}",
        texts.len()
    );
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn resume_from_a_random_cut_point_gets_exactly_the_rest(
        texts in proptest::collection::vec(".{0,16}", 0..=200),
        cut_seed in any::<u32>(),
        yields in proptest::collection::vec(any::<bool>(), 0..=200),
        reader_first in any::<bool>(),
    ) {
        // k in -1..N, -1 meaning "saw nothing".
        let k = i64::from(cut_seed) % (texts.len() as i64 + 1) - 1;
        let cut = u32::try_from(k).ok();
        runtime().block_on(resume_case(texts, cut, yields, reader_first));
    }
}

#[test]
fn every_cut_point_of_one_answer() {
    let n = 40;
    let texts: Vec<String> = (0..n).map(|i| format!("word {i} ")).collect();
    let rt = runtime();
    // -1 (None) through n, one past the last chunk (the client claims more than was sent).
    for cut in std::iter::once(None).chain((0..=n as u32).map(Some)) {
        for reader_first in [true, false] {
            let yields = (0..n).map(|i| i % 3 == 0).collect();
            rt.block_on(resume_case(texts.clone(), cut, yields, reader_first));
        }
    }
}
