//! The DynamoDB backend (`memory.backend = "dynamodb"`).
//!
//! # Tables
//!
//! Three tables, all on-demand (`PAY_PER_REQUEST`); names come from `memory.dynamodb.*_table`.
//! Payloads are the protobuf encoding of the gRPC message in a Binary attribute `payload`;
//! the other attributes are there for keys, filters and people reading the table.
//!
//! | table (default name)   | partition key      | sort key          | TTL attribute |
//! |------------------------|--------------------|-------------------|---------------|
//! | `mangaassist-sessions` | `session_id` (S)   | `ts` (N)          | `expires_at`  |
//! | `mangaassist-users`    | `user_id` (S)      | —                 | —             |
//! | `mangaassist-orders`   | `user_id` (S)      | `order_key` (S)   | —             |
//!
//! No secondary indexes.
//!
//! **Sessions.** Two kinds of item share a partition:
//! - the owner item, `ts = 0`, attribute `user_id` (S): the user who first wrote to the
//!   session. It is written with the condition
//!   `attribute_not_exists(user_id) OR user_id = :caller`, so of two users racing to claim a
//!   new session exactly one wins. With a turn TTL it has an `expires_at` like a turn's,
//!   renewed by every append, so a session's ownership goes with its last turn (DynamoDB's
//!   TTL deletes it) and a lapsed claim may be taken over (`OR expires_at <= :now`); it is
//!   about 70 bytes. With TTL 0 a session keeps its owner forever, as its turns.
//! - one item per turn, `ts = ts_ms * 1_000_000_000 + seq` (`seq` in 1..10⁹, unique per
//!   write: a per-process counter from a random start, re-randomised and retried when the
//!   key is taken), so turns stamped with the same millisecond never overwrite
//!   each other and keep their write order. Attributes: `ts_ms` (N), `role` (S),
//!   `expires_at` (N, epoch seconds = turn time + `memory.turn_ttl_days`; absent when the TTL
//!   is 0), `payload` (B, `mangaassist.v1.Turn`).
//!
//! History is a `Query` on `session_id` with `ts >= (now - ttl) * 10⁹`, newest first
//! (`ScanIndexForward = false`) and `Limit`: expired turns are excluded by the key condition
//! because DynamoDB deletes TTL-expired items lazily (up to days later).
//! TTL must be enabled on `expires_at` (`UpdateTimeToLive`).
//!
//! **Users.** `user_id` (S), `payload` (B, `mangaassist.v1.UserProfile`).
//!
//! **Orders.** `user_id` (S), `order_key` (S) = `"<placed_at>#<order_id>"` (ISO dates sort
//! chronologically, so a reverse `Query` is newest first), `order_id` (S), `store_id` (S),
//! `placed_at` (S), `payload` (B, `mangaassist.v1.Order`). An upsert that re-dates an order
//! finds the old item by querying the user's partition for its `order_id` and deletes it
//! (after writing the new one). Unlike the embedded store, moving an order to another
//! `user_id` leaves the old user's item in place: there is no global `order_id` index.
//!
//! # IAM
//!
//! `dynamodb:GetItem`, `PutItem`, `UpdateItem`, `Query`, `BatchWriteItem` and
//! `DescribeTable` on the three tables; with `create_tables` also `CreateTable`,
//! `DescribeTimeToLive` and `UpdateTimeToLive`.
//!
//! # Reads
//!
//! Every read is strongly consistent, so a turn is visible to the next `GetHistory` at once,
//! as with the embedded store (reads cost twice the eventually consistent price).

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use aws_config::SdkConfig;
use aws_sdk_dynamodb::{
    Client,
    config::{http::HttpResponse, timeout::TimeoutConfig},
    error::{BuildError, DisplayErrorContext, ProvideErrorMetadata, SdkError},
    operation::{
        query::builders::QueryFluentBuilder, transact_write_items::TransactWriteItemsError,
    },
    primitives::Blob,
    types::{
        AttributeDefinition, AttributeValue, BillingMode, DeleteRequest, KeySchemaElement, KeyType,
        Put, PutRequest, ScalarAttributeType, Select, TableStatus, TimeToLiveSpecification,
        TimeToLiveStatus, TransactWriteItem, WriteRequest,
    },
};
use mangaassist_aws::AwsTarget;
use mangaassist_config::DynamoDbSettings;
use mangaassist_proto::v1 as pb;
use prost::Message;

use crate::{
    MemoryError, MemoryStore,
    store::{
        Clock, decode, live_cutoff, not_owner, order_limit, stamp, system_now_ms, validate_seed,
    },
};

/// Sort key = `ts_ms * SEQ_SPAN + seq`.
const SEQ_SPAN: u128 = 1_000_000_000;
/// Sort key of a session's owner item; every turn's key is at least 1.
const OWNER_TS: &str = "0";

const SESSION_ID: &str = "session_id";
const TS: &str = "ts";
const TS_MS: &str = "ts_ms";
const ROLE: &str = "role";
const EXPIRES_AT: &str = "expires_at";
const USER_ID: &str = "user_id";
const ORDER_KEY: &str = "order_key";
const ORDER_ID: &str = "order_id";
const STORE_ID: &str = "store_id";
const PLACED_AT: &str = "placed_at";
const PAYLOAD: &str = "payload";

/// The connect timeout when the settings give none (config has no field for it).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Guards against a DynamoDB endpoint that accepts connections and never answers.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
const OPERATION_TIMEOUT: Duration = Duration::from_secs(15);
/// How long `create_tables` waits for a new table to become ACTIVE.
const TABLE_ACTIVE_TIMEOUT: Duration = Duration::from_secs(120);
/// `BatchWriteItem` takes at most 25 requests.
const BATCH_SIZE: usize = 25;
/// Rounds of resending throttled (unprocessed) batch items before giving up.
const BATCH_ATTEMPTS: u32 = 8;
/// Fresh sort keys tried when a turn's key is already taken (another replica, same ms).
const TS_ATTEMPTS: u32 = 5;

/// The three table names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DynamoTables {
    pub sessions: String,
    pub users: String,
    pub orders: String,
}

impl From<&DynamoDbSettings> for DynamoTables {
    fn from(s: &DynamoDbSettings) -> Self {
        Self {
            sessions: s.sessions_table.clone(),
            users: s.users_table.clone(),
            orders: s.orders_table.clone(),
        }
    }
}

/// Where the settings say DynamoDB is. `static_credentials` `None` = the standard credential
/// chain (production); fixed keys are for moto or DynamoDB Local.
pub fn aws_target(
    settings: &DynamoDbSettings,
    static_credentials: Option<(String, String)>,
) -> AwsTarget {
    AwsTarget {
        region: settings.region.clone(),
        endpoint_url: settings.endpoint_url.clone(),
        connect_timeout: CONNECT_TIMEOUT,
        static_credentials,
    }
}

/// Memory in three DynamoDB tables (see the module docs for their layout). Cheap to clone.
#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    tables: Arc<DynamoTables>,
    turn_ttl_ms: i64,
    clock: Clock,
    seq: Arc<AtomicU64>,
}

impl std::fmt::Debug for DynamoStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamoStore")
            .field("tables", &self.tables)
            .field("turn_ttl_ms", &self.turn_ttl_ms)
            .finish_non_exhaustive()
    }
}

impl DynamoStore {
    /// Production entry point: the credential chain, region and endpoint from the settings,
    /// then [`DynamoStore::prepare`].
    pub async fn connect(
        settings: &DynamoDbSettings,
        turn_ttl: Duration,
    ) -> Result<Self, MemoryError> {
        Self::connect_to(&aws_target(settings, None), settings, turn_ttl).await
    }

    /// Like [`DynamoStore::connect`] with an explicit target (tests: moto and fixed keys);
    /// the table names and `create_tables` still come from `settings`.
    pub async fn connect_to(
        target: &AwsTarget,
        settings: &DynamoDbSettings,
        turn_ttl: Duration,
    ) -> Result<Self, MemoryError> {
        let sdk = mangaassist_aws::sdk_config(target, "memory.dynamodb.region").await?;
        let store = Self::from_sdk_config(&sdk, DynamoTables::from(settings), turn_ttl);
        store.prepare(settings.create_tables).await?;
        Ok(store)
    }

    /// A store over an already loaded SDK configuration. No I/O: call
    /// [`DynamoStore::prepare`] (or [`DynamoStore::ensure_tables`]) before use. `turn_ttl`
    /// zero keeps turns forever.
    pub fn from_sdk_config(sdk: &SdkConfig, tables: DynamoTables, turn_ttl: Duration) -> Self {
        let base = sdk
            .timeout_config()
            .cloned()
            .unwrap_or_else(|| TimeoutConfig::builder().build());
        let mut timeouts = base.to_builder();
        if base.operation_attempt_timeout().is_none() {
            timeouts = timeouts.operation_attempt_timeout(ATTEMPT_TIMEOUT);
        }
        if base.operation_timeout().is_none() {
            timeouts = timeouts.operation_timeout(OPERATION_TIMEOUT);
        }
        let config = aws_sdk_dynamodb::config::Builder::from(sdk)
            .timeout_config(timeouts.build())
            .build();
        Self {
            client: Client::from_conf(config),
            tables: Arc::new(tables),
            turn_ttl_ms: i64::try_from(turn_ttl.as_millis()).unwrap_or(i64::MAX),
            clock: Arc::new(system_now_ms),
            seq: Arc::new(AtomicU64::new(random_seq())),
        }
    }

    /// Sets the next turn sequence number, normally random per store so that replicas
    /// rarely pick the same sort key; tests use it to force collisions.
    pub fn with_sequence_start(self, start: u64) -> Self {
        self.seq.store(start, Ordering::Relaxed);
        self
    }

    /// Replaces the wall clock (milliseconds since the epoch), so tests can age turns.
    pub fn with_clock(mut self, clock: impl Fn() -> i64 + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    pub fn tables(&self) -> &DynamoTables {
        &self.tables
    }

    /// `create_tables`: [`DynamoStore::ensure_tables`]. Otherwise checks that the tables
    /// exist, so a wrong name fails the start instead of every request; an unreachable
    /// endpoint or a denied `DescribeTable` only logs (requests then report it).
    pub async fn prepare(&self, create_tables: bool) -> Result<(), MemoryError> {
        if create_tables {
            return self.ensure_tables().await;
        }
        for table in self.table_names() {
            match self.table_status(table).await {
                Ok(_) => {}
                Err(e @ MemoryError::MissingTable { .. }) => return Err(e),
                Err(e) => tracing::warn!(table, error = %e, "cannot check DynamoDB table"),
            }
        }
        Ok(())
    }

    /// Creates missing tables (on demand billing), waits until each is ACTIVE, and turns on
    /// TTL on the sessions table's `expires_at` (a failure there only logs: some emulators
    /// lack it, and expired turns are hidden from reads anyway).
    pub async fn ensure_tables(&self) -> Result<(), MemoryError> {
        let t = &self.tables;
        self.ensure_table(
            &t.sessions,
            (SESSION_ID, ScalarAttributeType::S),
            Some((TS, ScalarAttributeType::N)),
        )
        .await?;
        self.ensure_table(&t.users, (USER_ID, ScalarAttributeType::S), None)
            .await?;
        self.ensure_table(
            &t.orders,
            (USER_ID, ScalarAttributeType::S),
            Some((ORDER_KEY, ScalarAttributeType::S)),
        )
        .await?;
        if self.turn_ttl_ms > 0 {
            self.enable_ttl().await;
        }
        Ok(())
    }

    fn table_names(&self) -> [&str; 3] {
        [
            &self.tables.sessions,
            &self.tables.users,
            &self.tables.orders,
        ]
    }

    async fn table_status(&self, table: &str) -> Result<Option<TableStatus>, MemoryError> {
        let out = self
            .client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| classify(table, "DescribeTable", e))?;
        Ok(out.table().and_then(|t| t.table_status()).cloned())
    }

    async fn ensure_table(
        &self,
        table: &str,
        hash: (&str, ScalarAttributeType),
        range: Option<(&str, ScalarAttributeType)>,
    ) -> Result<(), MemoryError> {
        match self.table_status(table).await {
            Ok(Some(TableStatus::Active)) => return Ok(()),
            Ok(_) => {}
            Err(MemoryError::MissingTable { .. }) => {
                let mut req = self
                    .client
                    .create_table()
                    .table_name(table)
                    .billing_mode(BillingMode::PayPerRequest);
                for (name, ty, key) in std::iter::once((hash.0, hash.1, KeyType::Hash))
                    .chain(range.map(|(n, t)| (n, t, KeyType::Range)))
                {
                    req = req
                        .attribute_definitions(
                            AttributeDefinition::builder()
                                .attribute_name(name)
                                .attribute_type(ty)
                                .build()
                                .map_err(build_error)?,
                        )
                        .key_schema(
                            KeySchemaElement::builder()
                                .attribute_name(name)
                                .key_type(key)
                                .build()
                                .map_err(build_error)?,
                        );
                }
                match req.send().await {
                    Ok(_) => tracing::info!(table, "DynamoDB table created"),
                    // Another replica is creating it right now: wait for it like for ours.
                    Err(e) if service_code(&e) == Some("ResourceInUseException") => {}
                    Err(e) => return Err(classify(table, "CreateTable", e)),
                }
            }
            Err(e) => return Err(e),
        }
        self.wait_active(table).await
    }

    async fn wait_active(&self, table: &str) -> Result<(), MemoryError> {
        let start = Instant::now();
        let mut interval = Duration::from_millis(100);
        loop {
            let status = match self.table_status(table).await {
                Ok(s) => s,
                // Right after CreateTable, DescribeTable may not see the table yet.
                Err(MemoryError::MissingTable { .. }) => None,
                Err(e) => return Err(e),
            };
            if status == Some(TableStatus::Active) {
                return Ok(());
            }
            if start.elapsed() > TABLE_ACTIVE_TIMEOUT {
                return Err(MemoryError::Storage(format!(
                    "DynamoDB table `{table}` is not ACTIVE after {}s (status {status:?})",
                    TABLE_ACTIVE_TIMEOUT.as_secs()
                )));
            }
            tokio::time::sleep(interval).await;
            interval = (interval * 2).min(Duration::from_secs(2));
        }
    }

    async fn enable_ttl(&self) {
        let table = self.tables.sessions.as_str();
        let current = self
            .client
            .describe_time_to_live()
            .table_name(table)
            .send()
            .await;
        if let Ok(out) = &current
            && let Some(d) = out.time_to_live_description()
            && matches!(
                d.time_to_live_status(),
                Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
            )
        {
            if d.attribute_name() != Some(EXPIRES_AT) {
                tracing::warn!(
                    table,
                    attribute = ?d.attribute_name(),
                    "TTL is on for another attribute than {EXPIRES_AT}: expired turns stay stored"
                );
            }
            return;
        }
        let spec = match TimeToLiveSpecification::builder()
            .enabled(true)
            .attribute_name(EXPIRES_AT)
            .build()
        {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(table, error = %e, "cannot build the TTL specification");
                return;
            }
        };
        match self
            .client
            .update_time_to_live()
            .table_name(table)
            .time_to_live_specification(spec)
            .send()
            .await
        {
            Ok(_) => tracing::info!(table, attribute = EXPIRES_AT, "DynamoDB TTL enabled"),
            Err(e) => tracing::warn!(
                table,
                error = %DisplayErrorContext(&e),
                "cannot enable DynamoDB TTL; expired turns are hidden but not deleted"
            ),
        }
    }

    fn cutoff(&self, now: i64) -> u64 {
        live_cutoff(now, self.turn_ttl_ms)
    }

    /// A consistent query of the session's live turns; callers add what to return.
    fn live_turns(&self, session_id: &str, now: i64) -> QueryFluentBuilder {
        self.client
            .query()
            .table_name(self.tables.sessions.as_str())
            .key_condition_expression("#sid = :s AND #ts >= :low")
            .expression_attribute_names("#sid", SESSION_ID)
            .expression_attribute_names("#ts", TS)
            .expression_attribute_values(":s", s(session_id))
            .expression_attribute_values(":low", self.lowest_live_key(now))
            .consistent_read(true)
    }

    /// A consistent query of the user's order items; callers add what to return.
    fn user_orders(&self, user_id: &str) -> QueryFluentBuilder {
        self.client
            .query()
            .table_name(self.tables.orders.as_str())
            .key_condition_expression("#uid = :u")
            .expression_attribute_names("#uid", USER_ID)
            .expression_attribute_values(":u", s(user_id))
            .consistent_read(true)
    }

    /// Smallest sort key of a live turn (always above the owner item's 0).
    fn lowest_live_key(&self, now: i64) -> AttributeValue {
        let low = (u128::from(self.cutoff(now)) * SEQ_SPAN).max(1);
        AttributeValue::N(low.to_string())
    }

    fn next_seq(&self) -> u128 {
        u128::from(self.seq.fetch_add(1, Ordering::Relaxed)) % (SEQ_SPAN - 1) + 1
    }

    /// Claims the session for `user_id`, or checks it already is theirs, in one conditional
    /// write. With a turn TTL the claim lasts as long as the turn written with it
    /// (`expires_at` = `last_write_ms` + TTL, renewed by every append), and a lapsed claim
    /// can be taken over: the session's turns have expired with it, so nothing of the old
    /// owner is readable. DynamoDB deletes expired items lazily, hence the explicit check.
    async fn claim(
        &self,
        session_id: &str,
        user_id: &str,
        now_ms: i64,
        last_write_ms: u64,
    ) -> Result<(), MemoryError> {
        let table = self.tables.sessions.as_str();
        let mut op = self
            .client
            .update_item()
            .table_name(table)
            .set_key(Some(owner_key(session_id)))
            .expression_attribute_names("#owner", USER_ID)
            .expression_attribute_values(":u", s(user_id));
        op = if self.turn_ttl_ms > 0 {
            let expires_ms =
                u128::from(last_write_ms) + u128::from(self.turn_ttl_ms.unsigned_abs());
            op.update_expression("SET #owner = :u, #exp = :exp")
                .condition_expression("attribute_not_exists(#owner) OR #owner = :u OR #exp <= :now")
                .expression_attribute_names("#exp", EXPIRES_AT)
                .expression_attribute_values(
                    ":exp",
                    AttributeValue::N(expires_ms.div_ceil(1_000).to_string()),
                )
                .expression_attribute_values(":now", AttributeValue::N(epoch_secs(now_ms)))
        } else {
            op.update_expression("SET #owner = if_not_exists(#owner, :u)")
                .condition_expression("attribute_not_exists(#owner) OR #owner = :u")
        };
        match op.send().await {
            Ok(_) => Ok(()),
            Err(e) if is_conditional_failure(&e) => Err(not_owner(session_id, user_id)),
            Err(e) => Err(classify(table, "UpdateItem", e)),
        }
    }

    /// The session's owner, `None` when unclaimed or when the claim has lapsed.
    async fn owner(&self, session_id: &str, now_ms: i64) -> Result<Option<String>, MemoryError> {
        let table = self.tables.sessions.as_str();
        let out = self
            .client
            .get_item()
            .table_name(table)
            .set_key(Some(owner_key(session_id)))
            .projection_expression("#owner, #exp")
            .expression_attribute_names("#owner", USER_ID)
            .expression_attribute_names("#exp", EXPIRES_AT)
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify(table, "GetItem", e))?;
        let Some(item) = out.item() else {
            return Ok(None);
        };
        let lapsed = item
            .get(EXPIRES_AT)
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse::<i64>().ok())
            .is_some_and(|exp| exp.saturating_mul(1_000) <= now_ms);
        if lapsed {
            return Ok(None);
        }
        Ok(item.get(USER_ID).and_then(|v| v.as_s().ok()).cloned())
    }

    /// The item of one turn, without its sort key.
    fn turn_item(
        &self,
        session_id: &str,
        ts_ms: u64,
        turn: &pb::Turn,
    ) -> HashMap<String, AttributeValue> {
        let mut item = HashMap::from([
            (SESSION_ID.to_string(), s(session_id)),
            (TS_MS.to_string(), AttributeValue::N(ts_ms.to_string())),
            (ROLE.to_string(), s(&turn.role)),
            (
                PAYLOAD.to_string(),
                AttributeValue::B(Blob::new(turn.encode_to_vec())),
            ),
        ]);
        if self.turn_ttl_ms > 0 {
            // Live while ts_ms >= now - ttl, so gone once now passes ts_ms + ttl.
            let expires_ms = u128::from(ts_ms) + u128::from(self.turn_ttl_ms.unsigned_abs());
            item.insert(
                EXPIRES_AT.to_string(),
                AttributeValue::N(expires_ms.div_ceil(1_000).to_string()),
            );
        }
        item
    }

    /// Writes `turns` (each with its `ts_ms`) in one transaction: all or none.
    async fn put_turns(
        &self,
        session_id: &str,
        turns: &[(u64, pb::Turn)],
    ) -> Result<(), MemoryError> {
        let table = self.tables.sessions.as_str();
        let mut items: Vec<_> = turns
            .iter()
            .map(|(ts_ms, turn)| (*ts_ms, self.turn_item(session_id, *ts_ms, turn)))
            .collect();
        for _ in 0..TS_ATTEMPTS {
            let mut writes = Vec::with_capacity(items.len());
            for (ts_ms, item) in &mut items {
                let key = u128::from(*ts_ms) * SEQ_SPAN + self.next_seq();
                item.insert(TS.to_string(), AttributeValue::N(key.to_string()));
                let put = Put::builder()
                    .table_name(table)
                    .set_item(Some(item.clone()))
                    .condition_expression("attribute_not_exists(#ts)")
                    .expression_attribute_names("#ts", TS)
                    .build()
                    .map_err(build_error)?;
                writes.push(TransactWriteItem::builder().put(put).build());
            }
            let r = self
                .client
                .transact_write_items()
                .set_transact_items(Some(writes))
                .send()
                .await;
            match r {
                Ok(_) => return Ok(()),
                Err(e) if is_key_collision(&e) => {
                    // Another store's sequence runs through the same keys: jump elsewhere.
                    self.seq.store(random_seq(), Ordering::Relaxed);
                }
                Err(e) => return Err(classify(table, "TransactWriteItems", e)),
            }
        }
        Err(MemoryError::Storage(format!(
            "no free sort keys for the turns of session `{session_id}` after {TS_ATTEMPTS} \
             attempts"
        )))
    }

    async fn count_live(&self, session_id: &str, now: i64) -> Result<u32, MemoryError> {
        let table = self.tables.sessions.as_str();
        let mut count: u64 = 0;
        let mut pages = self
            .live_turns(session_id, now)
            .select(Select::Count)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify(table, "Query", e))?;
            count += u64::try_from(page.count()).unwrap_or(0);
        }
        Ok(u32::try_from(count).unwrap_or(u32::MAX))
    }

    /// The user's order items (`order_id`, `order_key`), to find the old row of a re-dated
    /// order.
    async fn order_keys(&self, user_id: &str) -> Result<Vec<(String, String)>, MemoryError> {
        let table = self.tables.orders.as_str();
        let mut keys = Vec::new();
        let mut items = self
            .user_orders(user_id)
            .expression_attribute_names("#oid", ORDER_ID)
            .expression_attribute_names("#okey", ORDER_KEY)
            .projection_expression("#oid, #okey")
            .into_paginator()
            .items()
            .send();
        while let Some(item) = items.next().await {
            let item = item.map_err(|e| classify(table, "Query", e))?;
            if let (Some(id), Some(key)) = (str_attr(&item, ORDER_ID), str_attr(&item, ORDER_KEY)) {
                keys.push((id.to_string(), key.to_string()));
            }
        }
        Ok(keys)
    }

    /// Writes in batches of 25, resending what DynamoDB leaves unprocessed (throttling).
    async fn batch_write(
        &self,
        table: &str,
        requests: Vec<WriteRequest>,
    ) -> Result<(), MemoryError> {
        let mut pending: Vec<WriteRequest> = requests;
        while !pending.is_empty() {
            let rest = pending.split_off(pending.len().min(BATCH_SIZE));
            let mut batch = std::mem::replace(&mut pending, rest);
            let mut backoff = Duration::from_millis(50);
            for attempt in 1..=BATCH_ATTEMPTS {
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(table, batch)
                    .send()
                    .await
                    .map_err(|e| classify(table, "BatchWriteItem", e))?;
                batch = out
                    .unprocessed_items
                    .and_then(|mut m| m.remove(table))
                    .unwrap_or_default();
                if batch.is_empty() {
                    break;
                }
                if attempt == BATCH_ATTEMPTS {
                    return Err(MemoryError::Unavailable(format!(
                        "DynamoDB left {} writes to `{table}` unprocessed after {BATCH_ATTEMPTS} \
                         attempts (throttled)",
                        batch.len()
                    )));
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
        Ok(())
    }

    async fn write_orders(&self, orders: Vec<pb::Order>) -> Result<(), MemoryError> {
        // Last write wins for a repeated order_id, as with sequential upserts; BatchWriteItem
        // rejects two requests for one key anyway.
        let mut latest: HashMap<String, pb::Order> = HashMap::new();
        for o in orders {
            latest.insert(o.order_id.clone(), o);
        }
        let mut by_user: BTreeMap<String, Vec<pb::Order>> = BTreeMap::new();
        for o in latest.into_values() {
            by_user.entry(o.user_id.clone()).or_default().push(o);
        }
        let table = self.tables.orders.clone();
        for (user_id, orders) in by_user {
            let existing = self.order_keys(&user_id).await?;
            let new_keys: HashMap<&str, String> = orders
                .iter()
                .map(|o| (o.order_id.as_str(), order_key(o)))
                .collect();
            let stale: HashSet<&str> = existing
                .iter()
                .filter(|(id, key)| {
                    new_keys
                        .get(id.as_str())
                        .is_some_and(|new_key| new_key != key)
                })
                .map(|(_, key)| key.as_str())
                .collect();
            let mut puts = Vec::with_capacity(orders.len());
            for o in &orders {
                let item = HashMap::from([
                    (USER_ID.to_string(), s(&o.user_id)),
                    (ORDER_KEY.to_string(), s(&order_key(o))),
                    (ORDER_ID.to_string(), s(&o.order_id)),
                    (STORE_ID.to_string(), s(&o.store_id)),
                    (PLACED_AT.to_string(), s(&o.placed_at)),
                    (
                        PAYLOAD.to_string(),
                        AttributeValue::B(Blob::new(o.encode_to_vec())),
                    ),
                ]);
                puts.push(put_request(item)?);
            }
            // New rows first: a reader never sees the order missing, at worst twice.
            self.batch_write(&table, puts).await?;
            let mut deletes = Vec::with_capacity(stale.len());
            for key in stale {
                let del = DeleteRequest::builder()
                    .key(USER_ID, s(&user_id))
                    .key(ORDER_KEY, s(key))
                    .build()
                    .map_err(build_error)?;
                deletes.push(WriteRequest::builder().delete_request(del).build());
            }
            self.batch_write(&table, deletes).await?;
        }
        Ok(())
    }

    async fn write_profiles(&self, profiles: Vec<pb::UserProfile>) -> Result<(), MemoryError> {
        let mut latest: HashMap<String, pb::UserProfile> = HashMap::new();
        for p in profiles {
            latest.insert(p.user_id.clone(), p);
        }
        let mut puts = Vec::with_capacity(latest.len());
        for p in latest.into_values() {
            let item = HashMap::from([
                (USER_ID.to_string(), s(&p.user_id)),
                (
                    PAYLOAD.to_string(),
                    AttributeValue::B(Blob::new(p.encode_to_vec())),
                ),
            ]);
            puts.push(put_request(item)?);
        }
        let table = self.tables.users.clone();
        self.batch_write(&table, puts).await
    }
}

/// A random sequence start (randomly keyed std hasher output: enough to spread replicas'
/// sequences, no extra dependency).
fn random_seq() -> u64 {
    use std::hash::BuildHasher;
    let r = std::collections::hash_map::RandomState::new().hash_one(std::time::SystemTime::now());
    // Starting below the span keeps the counter far from u64 wrap-around.
    r % (SEQ_SPAN as u64)
}

/// Epoch seconds of a millisecond time, as a DynamoDB number.
fn epoch_secs(ms: i64) -> String {
    ms.div_euclid(1_000).to_string()
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_string())
}

fn str_attr<'a>(item: &'a HashMap<String, AttributeValue>, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

fn payload<M: Message + Default>(
    table: &'static str,
    item: &HashMap<String, AttributeValue>,
) -> Result<M, MemoryError> {
    let bytes = item
        .get(PAYLOAD)
        .and_then(|v| v.as_b().ok())
        .ok_or_else(|| MemoryError::Corrupt {
            table,
            message: format!("item without a binary `{PAYLOAD}` attribute"),
        })?;
    decode(table, bytes.as_ref())
}

/// The key of a session's owner item, which holds the user the session belongs to.
fn owner_key(session_id: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (SESSION_ID.to_string(), s(session_id)),
        (TS.to_string(), AttributeValue::N(OWNER_TS.into())),
    ])
}

/// `"<placed_at>#<order_id>"`: newest first under a reverse sort, unique per order.
fn order_key(o: &pb::Order) -> String {
    format!("{}#{}", o.placed_at, o.order_id)
}

fn build_error(e: BuildError) -> MemoryError {
    MemoryError::Storage(format!("building a DynamoDB request: {e}"))
}

fn service_code<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> Option<&str> {
    match e {
        SdkError::ServiceError(ctx) => ctx.err().code(),
        _ => None,
    }
}

fn is_conditional_failure<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> bool {
    service_code(e) == Some("ConditionalCheckFailedException")
}

/// A transaction cancelled only because a sort key was taken (a retry with other keys fixes
/// it); any other reason, such as throttling, is not.
fn is_key_collision(e: &SdkError<TransactWriteItemsError, HttpResponse>) -> bool {
    let Some(TransactWriteItemsError::TransactionCanceledException(c)) = e.as_service_error()
    else {
        return false;
    };
    let codes: Vec<&str> = c
        .cancellation_reasons()
        .iter()
        .filter_map(|r| r.code())
        .filter(|code| *code != "None")
        .collect();
    !codes.is_empty() && codes.iter().all(|code| *code == "ConditionalCheckFailed")
}

/// Error codes DynamoDB documents as retryable load or service trouble.
const UNAVAILABLE_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "LimitExceededException",
    "InternalServerError",
    "ServiceUnavailable",
    "TransactionInProgressException",
];

/// Maps an SDK failure: unreachable, throttled, timed out or 5xx → `Unavailable` (retry or
/// degrade), a missing table → `MissingTable`, anything else → `Storage` (internal).
fn classify<E>(table: &str, op: &'static str, e: SdkError<E, HttpResponse>) -> MemoryError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let detail = || format!("DynamoDB {op} on `{table}`: {}", DisplayErrorContext(&e));
    match &e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            MemoryError::Unavailable(detail())
        }
        SdkError::ServiceError(ctx) => {
            let code = ctx.err().code();
            if code == Some("ResourceNotFoundException") {
                MemoryError::MissingTable {
                    table: table.to_string(),
                }
            } else if code.is_some_and(|c| UNAVAILABLE_CODES.contains(&c))
                || ctx.raw().status().is_server_error()
            {
                MemoryError::Unavailable(detail())
            } else {
                MemoryError::Storage(detail())
            }
        }
        _ => MemoryError::Storage(detail()),
    }
}

#[async_trait::async_trait]
impl MemoryStore for DynamoStore {
    async fn append_turns(
        &self,
        session_id: &str,
        user_id: &str,
        turns: Vec<pb::Turn>,
    ) -> Result<u32, MemoryError> {
        if turns.is_empty() {
            return Err(MemoryError::InvalidArgument("no turns to append".into()));
        }
        let now = (self.clock)();
        let stamped: Vec<(u64, pb::Turn)> = turns
            .into_iter()
            .map(|mut turn| (stamp(&mut turn, now), turn))
            .collect();
        // The claim lasts as long as the newest turn written here.
        let last_write = stamped
            .iter()
            .map(|(ts, _)| *ts)
            .fold(u64::try_from(now).unwrap_or(0), u64::max);
        self.claim(session_id, user_id, now, last_write).await?;
        self.put_turns(session_id, &stamped).await?;
        self.count_live(session_id, now).await
    }

    async fn history(
        &self,
        session_id: &str,
        user_id: &str,
        limit: usize,
    ) -> Result<Vec<pb::Turn>, MemoryError> {
        let now = (self.clock)();
        match self.owner(session_id, now).await? {
            None => return Ok(Vec::new()),
            Some(owner) if owner != user_id => return Err(not_owner(session_id, user_id)),
            Some(_) => {}
        }
        let table = self.tables.sessions.as_str();
        let mut out = Vec::with_capacity(limit.min(64));
        // The stream is lazy: no page past the one that fills `limit` is requested.
        let mut items = self
            .live_turns(session_id, now)
            .expression_attribute_names("#payload", PAYLOAD)
            .projection_expression("#payload")
            .scan_index_forward(false)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .into_paginator()
            .items()
            .send();
        while out.len() < limit
            && let Some(item) = items.next().await
        {
            let item = item.map_err(|e| classify(table, "Query", e))?;
            out.push(payload::<pb::Turn>("sessions", &item)?);
        }
        Ok(out)
    }

    async fn profile(&self, user_id: &str) -> Result<Option<pb::UserProfile>, MemoryError> {
        let table = self.tables.users.as_str();
        let out = self
            .client
            .get_item()
            .table_name(table)
            .key(USER_ID, s(user_id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify(table, "GetItem", e))?;
        out.item()
            .map(|item| payload::<pb::UserProfile>("users", item))
            .transpose()
    }

    async fn orders(
        &self,
        user_id: &str,
        store_id: &str,
        limit: usize,
    ) -> Result<Vec<pb::Order>, MemoryError> {
        let limit = order_limit(limit);
        let table = self.tables.orders.as_str();
        let mut out = Vec::new();
        let mut req = self.user_orders(user_id).scan_index_forward(false);
        if store_id.is_empty() {
            // Without a filter every item read is returned, so Limit can cut the read.
            if limit != usize::MAX {
                req = req.limit(i32::try_from(limit).unwrap_or(i32::MAX));
            }
        } else {
            // Limit counts items before the filter; page until enough match instead.
            req = req
                .filter_expression("#store = :st")
                .expression_attribute_names("#store", STORE_ID)
                .expression_attribute_values(":st", s(store_id));
        }
        // Lazy: pages stop being requested once `limit` orders are in.
        let mut items = req.into_paginator().items().send();
        while out.len() < limit
            && let Some(item) = items.next().await
        {
            let item = item.map_err(|e| classify(table, "Query", e))?;
            out.push(payload::<pb::Order>("orders", &item)?);
        }
        Ok(out)
    }

    async fn upsert_profile(&self, profile: pb::UserProfile) -> Result<(), MemoryError> {
        self.seed(vec![profile], Vec::new()).await
    }

    async fn upsert_order(&self, order: pb::Order) -> Result<(), MemoryError> {
        self.seed(Vec::new(), vec![order]).await
    }

    async fn seed(
        &self,
        profiles: Vec<pb::UserProfile>,
        orders: Vec<pb::Order>,
    ) -> Result<(), MemoryError> {
        validate_seed(&profiles, &orders)?;
        self.write_profiles(profiles).await?;
        self.write_orders(orders).await
    }
}

/// One item of a `BatchWriteItem` put.
fn put_request(item: HashMap<String, AttributeValue>) -> Result<WriteRequest, MemoryError> {
    let put = PutRequest::builder()
        .set_item(Some(item))
        .build()
        .map_err(build_error)?;
    Ok(WriteRequest::builder().put_request(put).build())
}
