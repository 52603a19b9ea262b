//! The fault matrix: what breaks, how, and the subset `--quick` runs.

use serde::Serialize;

use crate::{mesh::DAEMONS, net::NetFault};

/// The families of faults; `--quick` keeps at least one of each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// A daemon process dies (SIGKILL) and is started again.
    Process,
    /// A daemon misbehaves while running: hangs, errors, slows down.
    Rpc,
    /// The network between the gateway and a daemon.
    Network,
    /// A gateway is rolled (SIGTERM, the other takes over).
    Gateway,
    /// A store under a daemon: Redis restarted, the memory file locked or its disk full.
    Store,
    /// Customers' connections cut mid-answer.
    Client,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Kill(&'static str),
    /// A `mesh.fault_file` action for the daemon: `hang`, `error:1.0`, `latency:300ms`.
    Rpc(&'static str, &'static str),
    Net(&'static str, NetFault),
    /// Roll the active gateway with this many answers streaming.
    RollGateway(usize),
    RestartRedis,
    MemoryLocked,
    MemoryFull,
    /// Cut this many answers mid-stream; each customer reconnects and resumes.
    Disconnects(u64),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    pub name: String,
    pub family: Family,
    pub action: Action,
}

impl Fault {
    fn new(family: Family, action: Action) -> Self {
        let name = match &action {
            Action::Kill(d) => format!("{d} SIGKILL + restart"),
            Action::Rpc(d, "hang") => format!("{d} hung"),
            Action::Rpc(d, a) if a.starts_with("error") => format!("{d} erroring 100%"),
            Action::Rpc(d, a) => format!("{d} slowed +{}", a.trim_start_matches("latency:")),
            Action::Net(d, f) => format!("{d} network {}", f.label()),
            Action::RollGateway(n) => format!("gateway rolled under {n} streams"),
            Action::RestartRedis => "redis restarted".to_string(),
            Action::MemoryLocked => "memory file locked".to_string(),
            Action::MemoryFull => "memory disk full".to_string(),
            Action::Disconnects(n) => format!("{n} client disconnects + resume"),
        };
        Self {
            name,
            family,
            action,
        }
    }

    /// Whether the memory daemon's saved turns must be checked after this fault.
    pub fn touches_memory_store(&self) -> bool {
        matches!(
            self.action,
            Action::Kill("memory") | Action::MemoryLocked | Action::MemoryFull
        )
    }
}

/// Every fault of the full rehearsal, in the order it runs.
pub fn full(roll_streams: usize, disconnects: u64) -> Vec<Fault> {
    let mut v = Vec::new();
    for d in DAEMONS {
        v.push(Fault::new(Family::Process, Action::Kill(d)));
        v.push(Fault::new(Family::Rpc, Action::Rpc(d, "hang")));
        v.push(Fault::new(Family::Rpc, Action::Rpc(d, "error:1.0")));
        v.push(Fault::new(Family::Rpc, Action::Rpc(d, "latency:300ms")));
    }
    for d in DAEMONS {
        for f in [NetFault::Loss, NetFault::Jitter, NetFault::Partition] {
            v.push(Fault::new(Family::Network, Action::Net(d, f)));
        }
    }
    v.push(Fault::new(
        Family::Gateway,
        Action::RollGateway(roll_streams),
    ));
    v.push(Fault::new(Family::Store, Action::RestartRedis));
    v.push(Fault::new(Family::Store, Action::MemoryLocked));
    v.push(Fault::new(Family::Store, Action::MemoryFull));
    v.push(Fault::new(Family::Client, Action::Disconnects(disconnects)));
    v
}

/// The representative subset: one of each family, the daemons on the answer's critical path.
pub fn quick(roll_streams: usize, disconnects: u64) -> Vec<Fault> {
    vec![
        Fault::new(Family::Process, Action::Kill("retrieval")),
        Fault::new(Family::Rpc, Action::Rpc("generation", "hang")),
        Fault::new(Family::Rpc, Action::Rpc("intent", "error:1.0")),
        Fault::new(Family::Rpc, Action::Rpc("memory", "latency:300ms")),
        Fault::new(Family::Network, Action::Net("cache", NetFault::Loss)),
        Fault::new(
            Family::Network,
            Action::Net("retrieval", NetFault::Partition),
        ),
        Fault::new(Family::Gateway, Action::RollGateway(roll_streams)),
        Fault::new(Family::Store, Action::RestartRedis),
        Fault::new(Family::Store, Action::MemoryFull),
        Fault::new(Family::Client, Action::Disconnects(disconnects)),
    ]
}

/// Faults whose name contains `filter` (case-insensitive); all when empty.
pub fn select(faults: Vec<Fault>, filter: &[String]) -> Vec<Fault> {
    if filter.is_empty() {
        return faults;
    }
    faults
        .into_iter()
        .filter(|f| {
            let n = f.name.to_lowercase();
            filter.iter().any(|w| n.contains(&w.to_lowercase()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_matrix_covers_every_daemon_and_quick_every_family() {
        let all = full(1000, 1000);
        assert_eq!(all.len(), 6 * 4 + 6 * 3 + 5);
        for d in DAEMONS {
            assert!(all.iter().any(|f| f.action == Action::Kill(d)));
        }
        let q = quick(1000, 1000);
        assert!(q.len() >= 8);
        for fam in [
            Family::Process,
            Family::Rpc,
            Family::Network,
            Family::Gateway,
            Family::Store,
            Family::Client,
        ] {
            assert!(q.iter().any(|f| f.family == fam), "{fam:?}");
        }
        assert_eq!(q[1].name, "generation hung");
        assert_eq!(q[3].name, "memory slowed +300ms");
        assert_eq!(select(all, &["partition".into()]).len(), 6);
    }
}
