//! Issue 14, item 4: a client that sends questions and never reads. It must not hold its
//! answers or the gateway's memory: after the write timeout it is disconnected, its answers
//! finish into the resume buffer (so it can resume them later), and everyone else is served
//! throughout.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{TestMesh, WsClient, read_until_done};
use futures::{SinkExt, StreamExt};
use mangaassist::mesh::Role;
use mangaassist_protocol::{ClientFrame, ServerFrame};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_cut_off_and_its_answers_wait_in_the_resume_buffer() {
    let m = TestMesh::start_with(&[], |c| {
        c.gateway.stream.write_timeout_ms = 300;
        c.gateway.stream.send_buffer_bytes = 4096;
        // One frame per model delta: many small frames, so the answers overflow the socket
        // buffers of a client that reads nothing.
        c.gateway.stream.unbatched_chunks = 100_000;
    })
    .await;
    let addr = m.mesh().addrs[&Role::Gateway];
    // A tiny receive window: the kernel takes a few KiB for this client, then the gateway's
    // writes stall.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(1024).unwrap();
    let tcp = socket.connect(addr).await.unwrap();
    let (mut stalled, _) = tokio_tungstenite::client_async(m.ws_url_as("u-slow"), tcp)
        .await
        .unwrap();
    let questions = [
        "Recommend me dark fantasy manga like Berserk with long story arcs",
        "Suggest some romance manga similar to Kaguya-sama for a new reader",
        "What sports manga would you recommend to a fan of Haikyuu and Slam Dunk",
        "Recommend horror manga like Junji Ito's Uzumaki and Tomie",
    ];
    let mids: Vec<String> = (0..questions.len())
        .map(|i| format!("m-slow-{i}"))
        .collect();
    for (q, mid) in questions.iter().zip(&mids) {
        let f = ClientFrame::Query {
            text: (*q).into(),
            session_id: Some("s-slow".into()),
            store_id: None,
            message_id: Some(mid.clone()),
        };
        stalled
            .send(Message::Text(f.to_json().into()))
            .await
            .unwrap();
    }
    // Someone else is served while the stalled socket holds whatever it holds.
    let mut other = WsClient::connect(&m.ws_url_as("u-other")).await;
    other
        .ask("How long does shipping take?", "s-other")
        .await
        .done();
    // The answers run to their end without the stalled client: resuming them elsewhere
    // yields every `done`. (Had they waited on the client, they would hang here.)
    let mut again = WsClient::connect(&m.ws_url_as("u-slow")).await;
    for mid in &mids {
        again.resume("s-slow", mid, None).await;
        let frames = read_until_done(&mut again, mid).await;
        assert!(
            matches!(frames.last(), Some(ServerFrame::Done(_))),
            "{mid}: {frames:?}"
        );
    }
    // And the stalled client has been disconnected: reading now drains what the kernel
    // held and reaches the end, without every answer.
    let mut dones = 0;
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(msg)) = stalled.next().await {
            if let Message::Text(t) = msg
                && let Ok(ServerFrame::Done(_)) =
                    mangaassist_protocol::parse_server_frame(t.as_str())
            {
                dones += 1;
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the stalled socket is still open");
    assert!(dones < mids.len(), "the stalled client got every answer");
    m.stop().await;
}
