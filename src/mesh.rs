//! Starts any subset of the daemons in one process. `up` starts all of them, each on its own
//! loopback port; `serve X` starts one and reaches its peers at the configured endpoints.
//! The gateway and precompute call a daemon started in the same process in process (through
//! its `InProcess` door, no socket) unless `mesh.in_process` leaves it out; every daemon
//! still serves gRPC for callers outside the process.

use std::{collections::BTreeMap, fmt, net::SocketAddr, str::FromStr, sync::Arc};

use anyhow::Context;
use mangaassist_client::{
    CacheClient, GenerationClient, IntentClient, MemoryClient, MeshClients, PrecomputeClient,
    RetrievalClient,
};
use mangaassist_config::Config;
use mangaassist_embedding::QueryEmbedder;
use mangaassist_server::{InProcess, ServeOptions};
use tokio::{net::TcpListener, task::JoinSet};
use tokio_util::sync::CancellationToken;

/// A daemon this binary can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Intent,
    Retrieval,
    Memory,
    Cache,
    Generation,
    Precompute,
    Gateway,
}

impl Role {
    pub const ALL: [Role; 7] = [
        Role::Memory,
        Role::Cache,
        Role::Generation,
        Role::Intent,
        Role::Retrieval,
        Role::Precompute,
        Role::Gateway,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Role::Intent => "intent",
            Role::Retrieval => "retrieval",
            Role::Memory => "memory",
            Role::Cache => "cache",
            Role::Generation => "generation",
            Role::Precompute => "precompute",
            Role::Gateway => "gateway",
        }
    }

    fn needs_embedder(self) -> bool {
        matches!(
            self,
            Role::Intent | Role::Retrieval | Role::Cache | Role::Gateway
        )
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown daemon `{s}` (one of intent, retrieval, memory, cache, generation, precompute, gateway)"
                )
            })
    }
}

/// In-process clients of the daemons built so far in this process (those whose
/// `mesh.in_process` names), for the callers built after them.
#[derive(Default)]
struct Colocated {
    intent: Option<IntentClient>,
    retrieval: Option<RetrievalClient>,
    memory: Option<MemoryClient>,
    cache: Option<CacheClient>,
    generation: Option<GenerationClient>,
    precompute: Option<PrecomputeClient>,
}

impl Colocated {
    /// `clients` with every co-located daemon called in process.
    fn apply(&self, mut clients: MeshClients) -> MeshClients {
        fn swap<T: Clone>(slot: &mut T, local: &Option<T>) {
            if let Some(l) = local {
                *slot = l.clone();
            }
        }
        swap(&mut clients.intent, &self.intent);
        swap(&mut clients.retrieval, &self.retrieval);
        swap(&mut clients.memory, &self.memory);
        swap(&mut clients.cache, &self.cache);
        swap(&mut clients.generation, &self.generation);
        swap(&mut clients.precompute, &self.precompute);
        clients
    }

    /// The daemons called in process, by name.
    fn names(&self) -> Vec<&'static str> {
        [
            ("intent", self.intent.is_some()),
            ("retrieval", self.retrieval.is_some()),
            ("memory", self.memory.is_some()),
            ("cache", self.cache.is_some()),
            ("generation", self.generation.is_some()),
            ("precompute", self.precompute.is_some()),
        ]
        .into_iter()
        .filter_map(|(n, on)| on.then_some(n))
        .collect()
    }
}

/// Daemons started by [`start`].
pub struct RunningMesh {
    /// Bound address of each daemon started here.
    pub addrs: BTreeMap<Role, SocketAddr>,
    /// The gateway's operators' listener (`/metrics`, `/slo`, `/routing`, `/breakers`).
    pub internal_addr: Option<SocketAddr>,
    /// Cancel to shut everything down gracefully.
    pub shutdown: CancellationToken,
    /// The configuration after binding (endpoints point at the real ports).
    pub config: Config,
    /// Faults in force in every daemon of this process; change them while it runs.
    pub faults: mangaassist_server::FaultSwitch,
    tasks: JoinSet<(Role, Result<(), String>)>,
}

impl RunningMesh {
    pub fn gateway_url(&self) -> Option<String> {
        self.addrs
            .get(&Role::Gateway)
            .map(|a| format!("http://{a}/"))
    }

    /// Base URL of the gateway's status pages, e.g. `http://127.0.0.1:8081/`.
    pub fn internal_url(&self) -> Option<String> {
        self.internal_addr.map(|a| format!("http://{a}/"))
    }

    pub fn ws_url(&self) -> Option<String> {
        self.addrs
            .get(&Role::Gateway)
            .map(|a| format!("ws://{a}/ws"))
    }

    /// Waits until every daemon has stopped; the first failure is returned.
    pub async fn wait(mut self) -> anyhow::Result<()> {
        let mut first_err = None;
        while let Some(r) = self.tasks.join_next().await {
            match r {
                Ok((role, Err(e))) => {
                    tracing::error!(daemon = role.name(), error = %e, "daemon failed");
                    // One daemon down takes the process down: an orchestrator restarts it.
                    self.shutdown.cancel();
                    first_err.get_or_insert_with(|| anyhow::anyhow!("{role}: {e}"));
                }
                Ok((_, Ok(()))) => {}
                Err(e) => {
                    self.shutdown.cancel();
                    first_err.get_or_insert_with(|| anyhow::anyhow!("daemon task panicked: {e}"));
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Requests shutdown and waits for every daemon to drain.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.wait().await
    }
}

/// Where a consumer in this process reads inventory changes: the retrieval daemon's
/// inventory when it runs here, else its `InventoryService.Watch` over gRPC.
fn inventory_feed(
    config: &Config,
    local: Option<&mangaassist_inventory::Inventory>,
    caller: &str,
) -> anyhow::Result<mangaassist_inventory::FeedSource> {
    Ok(match local {
        Some(inv) => mangaassist_inventory::FeedSource::Local(inv.clone()),
        None => mangaassist_client::InventoryClient::connect_mesh(
            &config.mesh,
            mangaassist_client::service_tokens(&config.mesh, caller)?,
        )?
        .feed(),
    })
}

/// Where the sentence model is expected.
pub fn model_dirs(config: &Config) -> mangaassist_embedding::ModelDirs {
    let or_cache = |dir: &std::path::Path, default: &str| {
        if dir.as_os_str().is_empty() {
            config.data.resolved_cache_dir().join(default)
        } else {
            dir.to_path_buf()
        }
    };
    mangaassist_embedding::ModelDirs {
        static_model: or_cache(&config.embedding.static_model_dir, "models/static-me5s-v2"),
        minilm: or_cache(&config.embedding.model_dir, "models/all-MiniLM-L6-v2"),
    }
}

/// Loads the configured embedder once, for every daemon in this process.
pub async fn load_embedder(config: &Config) -> anyhow::Result<QueryEmbedder> {
    let backend = config.embedding.backend;
    let dirs = model_dirs(config);
    let capacity = config.embedding.query_cache_entries;
    let inner = tokio::task::spawn_blocking(move || {
        mangaassist_embedding::from_backend(backend.as_str(), &dirs)
    })
    .await
    .context("embedder loader panicked")??;
    tracing::info!(model = inner.model_id(), "embedder ready");
    Ok(QueryEmbedder::new(inner, capacity))
}

/// Binds every role's listener (so port 0 resolves before peers are wired), builds the
/// daemons and starts serving them. Returns once all are accepting connections.
pub async fn start(mut config: Config, roles: &[Role]) -> anyhow::Result<RunningMesh> {
    let mut listeners: BTreeMap<Role, TcpListener> = BTreeMap::new();
    let mut addrs = BTreeMap::new();
    for &role in roles {
        let listen = match role {
            Role::Gateway => config.gateway.listen.clone(),
            _ => config
                .mesh
                .daemons()
                .into_iter()
                .find(|(n, _)| *n == role.name())
                .map(|(_, a)| a.listen.clone())
                .context("daemon missing from mesh settings")?,
        };
        let (l, addr) = mangaassist_server::bind_with_addr(&listen)
            .await
            .with_context(|| format!("{role}: cannot listen on {listen}"))?;
        listeners.insert(role, l);
        addrs.insert(role, addr);
    }
    // Peers in this process are reached at the ports actually bound.
    for (name, daemon) in config.mesh.daemons_mut() {
        if let Some(addr) = addrs
            .iter()
            .find(|(r, _)| r.name() == name)
            .map(|(_, a)| *a)
        {
            daemon.endpoint = format!("http://{addr}");
        }
    }
    config.gateway.listen = addrs
        .get(&Role::Gateway)
        .map_or(config.gateway.listen.clone(), ToString::to_string);
    let mut internal = None;
    if roles.contains(&Role::Gateway) {
        let listen = config.gateway.internal_listen.clone();
        let (l, addr) = mangaassist_server::bind_with_addr(&listen)
            .await
            .with_context(|| format!("gateway: cannot listen on {listen} (internal)"))?;
        config.gateway.internal_listen = addr.to_string();
        internal = Some((l, addr));
    }
    let internal_addr = internal.as_ref().map(|(_, a)| *a);

    let embedder = if roles.iter().any(|r| r.needs_embedder()) {
        Some(load_embedder(&config).await?)
    } else {
        None
    };
    let shutdown = CancellationToken::new();
    // The daemons stop only after the gateway has drained: its last answers still save turns
    // to memory, write the cache and ask precompute. Without a gateway here they stop at once.
    let daemons_stop = CancellationToken::new();
    let gateway_done = CancellationToken::new();
    if !roles.contains(&Role::Gateway) {
        gateway_done.cancel();
    }
    {
        let shutdown = shutdown.clone();
        let gateway_done = gateway_done.clone();
        let daemons_stop = daemons_stop.clone();
        #[allow(
            clippy::disallowed_methods,
            reason = "ends when the mesh shuts down; it only relays one cancellation"
        )]
        tokio::spawn(async move {
            shutdown.cancelled().await;
            gateway_done.cancelled().await;
            daemons_stop.cancel();
        });
    }
    let opts = ServeOptions::from_config(&config, daemons_stop.clone())?;
    if !config.mesh.fault_file.as_os_str().is_empty() {
        tracing::warn!(path = %config.mesh.fault_file.display(), "following mesh.fault_file: its faults apply to this process's daemons");
        // Ends with the daemons; the handle is not needed to stop it.
        drop(opts.faults.follow_file(
            config.faults.clone(),
            config.mesh.fault_file.clone(),
            std::time::Duration::from_millis(200),
            daemons_stop.clone(),
        ));
    }
    let mut tasks = JoinSet::new();
    let mut colocated = Colocated::default();
    // The retrieval daemon's inventory when it runs here (and is called in process); the
    // cache (built before it) starts following it once every daemon is built.
    let mut inventory: Option<mangaassist_inventory::Inventory> = None;
    let mut cache_daemon: Option<mangaassist_cache::CacheDaemon> = None;
    // Daemons first, in `Role::ALL` order: precompute and the gateway, built last, can then
    // call every daemon of this process in process.
    let ordered: Vec<Role> = Role::ALL
        .into_iter()
        .filter(|r| roles.contains(r))
        .collect();
    for role in ordered {
        let Some(listener) = listeners.remove(&role) else {
            continue;
        };
        let opts = opts.clone();
        let cfg = &config;
        let emb = || embedder.clone().context("embedder not loaded");
        let started = std::time::Instant::now();
        match role {
            Role::Memory => {
                let d = mangaassist_memory::MemoryDaemon::new(cfg).await?;
                if cfg.mesh.calls_in_process("memory") {
                    colocated.memory = Some(MemoryClient::in_process(
                        Arc::new(d.clone()),
                        InProcess::new("memory", &opts),
                    ));
                }
                tasks.spawn(async move {
                    (
                        role,
                        d.serve(listener, opts).await.map_err(|e| e.to_string()),
                    )
                });
            }
            Role::Cache => {
                let d = mangaassist_cache::CacheDaemon::new(cfg, emb()?).await?;
                cache_daemon = Some(d.clone());
                if cfg.mesh.calls_in_process("cache") {
                    colocated.cache = Some(CacheClient::in_process(
                        Arc::new(d.clone()),
                        InProcess::new("cache", &opts),
                    ));
                }
                tasks.spawn(async move {
                    (
                        role,
                        d.serve(listener, opts).await.map_err(|e| e.to_string()),
                    )
                });
            }
            Role::Generation => {
                let d = mangaassist_generation::GenerationDaemon::new(cfg).await?;
                if cfg.mesh.calls_in_process("generation") {
                    colocated.generation = Some(GenerationClient::in_process(
                        Arc::new(d.clone()),
                        InProcess::new("generation", &opts),
                    ));
                }
                tasks.spawn(async move {
                    (
                        role,
                        d.serve(listener, opts).await.map_err(|e| e.to_string()),
                    )
                });
            }
            Role::Intent => {
                let d = mangaassist_intent::IntentDaemon::new(cfg, emb()?).await?;
                if cfg.mesh.calls_in_process("intent") {
                    colocated.intent = Some(IntentClient::in_process(
                        Arc::new(d.clone()),
                        InProcess::new("intent", &opts),
                    ));
                }
                tasks.spawn(async move {
                    (
                        role,
                        d.serve(listener, opts).await.map_err(|e| e.to_string()),
                    )
                });
            }
            Role::Retrieval => {
                let d = mangaassist_retrieval::RetrievalDaemon::serving(cfg, emb()?).await?;
                if cfg.mesh.calls_in_process("retrieval") {
                    inventory = Some(d.inventory().clone());
                    colocated.retrieval = Some(RetrievalClient::in_process(
                        Arc::new(d.clone()),
                        InProcess::new("retrieval", &opts),
                    ));
                }
                tasks.spawn(async move {
                    (
                        role,
                        d.serve(listener, opts).await.map_err(|e| e.to_string()),
                    )
                });
            }
            Role::Precompute => {
                let t = mangaassist_client::service_tokens(&cfg.mesh, "precompute")?;
                let peers = mangaassist_precompute::PrecomputePeers {
                    retrieval: match &colocated.retrieval {
                        Some(c) => c.clone(),
                        None => RetrievalClient::connect_mesh(&cfg.mesh, t.clone())?,
                    },
                    generation: match &colocated.generation {
                        Some(c) => c.clone(),
                        None => GenerationClient::connect_mesh(&cfg.mesh, t.clone())?,
                    },
                    cache: match &colocated.cache {
                        Some(c) => c.clone(),
                        None => CacheClient::connect_mesh(&cfg.mesh, t)?,
                    },
                };
                let d = mangaassist_precompute::PrecomputeDaemon::new(cfg, peers).await?;
                d.follow_inventory(inventory_feed(cfg, inventory.as_ref(), "precompute")?);
                if cfg.mesh.calls_in_process("precompute") {
                    colocated.precompute = Some(PrecomputeClient::in_process(
                        Arc::new(d.clone()),
                        InProcess::new("precompute", &opts),
                    ));
                }
                tasks.spawn(async move {
                    (
                        role,
                        d.serve(listener, opts).await.map_err(|e| e.to_string()),
                    )
                });
            }
            Role::Gateway => {
                let clients = colocated.apply(MeshClients::connect(&cfg.mesh)?);
                tracing::info!(
                    in_process = ?colocated.names(),
                    "gateway calls these daemons in process"
                );
                let mut gw = mangaassist_gateway::Gateway::new(
                    cfg,
                    clients,
                    embedder.clone(),
                    shutdown.clone(),
                )?;
                if let Some(store) = mangaassist_gateway::connect_resume_store(cfg).await? {
                    gw = gw.with_resume_store(store);
                }
                if let Some(limits) = mangaassist_gateway::connect_user_limits(cfg).await? {
                    gw = gw.with_user_limits(limits);
                }
                let feed = inventory_feed(cfg, inventory.as_ref(), "gateway")?;
                let follower =
                    mangaassist_inventory::follow(feed, "gateway", |_| {}, daemons_stop.clone());
                // Set once, right after construction: cannot already hold a view.
                let _ = gw.orchestrator().stock.set(follower.view);
                let done = gateway_done.clone().drop_guard();
                let internal = internal.take().map(|(l, _)| l);
                tasks.spawn(async move {
                    let r = gw
                        .serve(listener, internal)
                        .await
                        .map_err(|e| e.to_string());
                    drop(done);
                    (role, r)
                });
            }
        }
        tracing::info!(
            daemon = role.name(),
            ms = started.elapsed().as_millis() as u64,
            "daemon built"
        );
    }
    if let Some(cache) = cache_daemon {
        let feed = inventory_feed(&config, inventory.as_ref(), "cache")?;
        cache.follow_inventory(feed, daemons_stop.clone());
    }
    let faults = opts.faults.clone();
    Ok(RunningMesh {
        addrs,
        internal_addr,
        shutdown,
        config,
        faults,
        tasks,
    })
}
