//! Issue 14, item 9: SIGTERM under load loses nothing. The gateway drains first and the
//! daemons stop after it, so the turn of an answer that finishes during the drain is saved;
//! the socket is told to reconnect (1012) after its last frame.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{TestMesh, read_until_done};
use mangaassist::mesh::{self, Role};
use mangaassist_proto::v1 as pb;
use mangaassist_protocol::ServerFrame;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_in_flight_at_shutdown_is_delivered_and_its_turn_saved() {
    // A slow model: the answer is still being generated when shutdown starts.
    let mut m = TestMesh::start(&["generation.Generate=latency:800ms"]).await;
    let config = m.mesh().config.clone();
    let mut c = m.client().await;
    c.query("Recommend manga like Naruto", "s-down", "m-down")
        .await;
    // Its first frame: the gateway has taken the question and the answer is running.
    c.next_frame().await;
    let reading = async {
        let frames = read_until_done(&mut c, "m-down").await;
        (frames, c.next_raw().await)
    };
    let ((frames, after), ()) = tokio::join!(reading, m.shut_down());
    assert!(
        matches!(frames.last(), Some(ServerFrame::Done(_))),
        "{frames:?}"
    );
    match after {
        Some(Message::Close(Some(f))) => assert_eq!(u16::from(f.code), 1012),
        other => panic!("expected the 1012 close after the answer, got {other:?}"),
    }
    // Memory, started again on the same state, holds the whole turn.
    let memory = mesh::start(config, &[Role::Memory]).await.unwrap();
    let client =
        mangaassist_client::MemoryClient::connect(&memory.config.mesh.memory.endpoint).unwrap();
    let history = client
        .get_history(
            pb::GetHistoryRequest {
                session_id: "s-down".into(),
                user_id: "u-demo".into(),
                limit: 10,
            },
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    let roles: Vec<&str> = history.turns.iter().map(|t| t.role.as_str()).collect();
    assert_eq!(roles, ["assistant", "user"], "{history:?}");
    memory.stop().await.unwrap();
}
