//! A balanced channel spreads calls over every replica its resolver reports, and a replica
//! that leaves the set (as a pod leaves a headless Service's DNS answer before it stops) takes
//! no call with it: every call succeeds while it drains and after it has stopped.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_methods,
    reason = "a test owns and joins every task it spawns"
)]

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use mangaassist_client::{IntentClient, Listed, balanced_channel};
use mangaassist_proto::v1 as pb;
use mangaassist_server::{Daemon, ServeOptions};
use tokio::task::JoinHandle;
use tonic::{Request, Response, Status};

/// One replica of the intent daemon that counts the calls it answers.
#[derive(Clone, Default)]
struct Replica(Arc<AtomicU64>);

#[tonic::async_trait]
impl pb::intent_service_server::IntentService for Replica {
    async fn classify(
        &self,
        _request: Request<pb::ClassifyRequest>,
    ) -> Result<Response<pb::ClassifyResponse>, Status> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(Response::new(pb::ClassifyResponse::default()))
    }
}

struct Running {
    addr: SocketAddr,
    calls: Arc<AtomicU64>,
    opts: ServeOptions,
    task: JoinHandle<()>,
}

impl Running {
    fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    async fn stop(self) {
        self.opts.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("replica stops")
            .unwrap();
    }
}

/// A replica on `ip`:0 (a second loopback address where the system has one).
async fn replica(ip: &str) -> Running {
    let (listener, addr) = match mangaassist_server::bind_with_addr(&format!("{ip}:0")).await {
        Ok(bound) => bound,
        Err(_) => mangaassist_server::bind_with_addr("127.0.0.1:0")
            .await
            .unwrap(),
    };
    let svc = Replica::default();
    let calls = svc.0.clone();
    let opts = ServeOptions::for_tests();
    let serve_opts = opts.clone();
    let task = tokio::spawn(async move {
        Daemon::new("intent")
            .add_service(pb::intent_service_server::IntentServiceServer::new(svc))
            .serve(listener, serve_opts)
            .await
            .unwrap();
    });
    Running {
        addr,
        calls,
        opts,
        task,
    }
}

async fn classify(client: &IntentClient) -> Result<pb::ClassifyResponse, Status> {
    client
        .classify(pb::ClassifyRequest::default(), Duration::from_secs(5))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_spread_over_replicas_and_survive_one_leaving() {
    let a = replica("127.0.0.1").await;
    let b = replica("127.0.0.2").await;
    let addrs = Listed::new(vec![a.addr, b.addr]);
    let resolver = addrs.clone();
    let channel = balanced_channel(
        "intent",
        "http://intent.mangaassist.svc:50061",
        resolver,
        Duration::from_millis(20),
    )
    .unwrap();
    let client = IntentClient::new(channel);
    assert!(
        addrs.applied(Duration::from_secs(10)).await,
        "resolver runs"
    );

    // Both replicas take calls (p2c picks at random among idle ones: 2^-199 to miss one).
    for _ in 0..200 {
        classify(&client).await.unwrap();
        if a.calls() > 0 && b.calls() > 0 {
            break;
        }
    }
    assert!(
        a.calls() > 0 && b.calls() > 0,
        "a {} b {}",
        a.calls(),
        b.calls()
    );

    // `b` leaves the DNS answer (Kubernetes removes a terminating pod from the Service before
    // its preStop sleep ends), then stops. No call fails on the way, and `b` takes none.
    addrs.update(|l| l.retain(|x| *x != b.addr));
    assert!(
        addrs.applied(Duration::from_secs(10)).await,
        "resolver runs"
    );
    let b_before = b.calls();
    let b_calls = b.calls.clone();
    let concurrent = {
        let client = client.clone();
        tokio::spawn(async move {
            for _ in 0..100 {
                classify(&client).await.unwrap();
            }
        })
    };
    b.stop().await;
    concurrent.await.unwrap();
    let a_before = a.calls();
    for _ in 0..50 {
        classify(&client).await.unwrap();
    }
    assert_eq!(a.calls(), a_before + 50);
    assert_eq!(
        b_calls.load(Ordering::SeqCst),
        b_before,
        "the removed replica took calls"
    );

    // A new replica joining is picked up too.
    let c = replica("127.0.0.3").await;
    addrs.update(|l| l.push(c.addr));
    assert!(
        addrs.applied(Duration::from_secs(10)).await,
        "resolver runs"
    );
    for _ in 0..200 {
        classify(&client).await.unwrap();
        if c.calls() > 0 {
            break;
        }
    }
    assert!(c.calls() > 0, "the new replica took no call");
    a.stop().await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_that_does_not_accept_connections_takes_no_call() {
    let a = replica("127.0.0.1").await;
    // A port nobody listens on (bound, then released): connections are refused.
    let dead = {
        let (l, addr) = mangaassist_server::bind_with_addr("127.0.0.1:0")
            .await
            .unwrap();
        drop(l);
        addr
    };
    let resolver = Listed::new(vec![dead, a.addr]);
    let addrs = resolver.clone();
    let client = IntentClient::new(
        balanced_channel(
            "intent",
            "http://intent.mangaassist.svc:50061",
            resolver,
            Duration::from_millis(20),
        )
        .unwrap(),
    );
    assert!(
        addrs.applied(Duration::from_secs(10)).await,
        "resolver runs"
    );
    for _ in 0..50 {
        classify(&client).await.unwrap();
    }
    assert_eq!(a.calls(), 50);
    a.stop().await;
}
