//! The Redis store: one server (`redis://`, `rediss://`) or a Redis Cluster, reached through
//! redis-rs connections that reconnect by themselves. Every call is bounded by the configured
//! timeout, so a dead or slow Redis turns into a prompt [`StoreError`], never a hung request.

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, FromRedisValue, Pipeline, RedisFuture, Script, Value};
use tokio::sync::OnceCell;

use super::{Store, StoreError, StoreUrl};

/// `SET key new PX ttl` only if `key` holds `expected`.
const COMPARE_AND_SWAP: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0";

/// `DEL key` only if `key` holds `expected`.
const TAKE_IF: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0";

/// `DECR key` only if it is alive and above zero (a `DECR` of a missing key would create
/// one that never expires).
const DECR_LIVE: &str = r"
local n = tonumber(redis.call('GET', KEYS[1]))
if n and n > 0 then redis.call('DECR', KEYS[1]) end
return 0";

/// `SET key value PX ttl`, then `PUBLISH channel event`; returns whether the event went out
/// (`pcall`: a user the server's ACL keeps from pub/sub still stores).
const PUT_AND_PUBLISH: &str = r"
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local sent = redis.pcall('PUBLISH', ARGV[3], ARGV[4])
if type(sent) == 'table' and sent.err then return 0 end
return 1";

/// `INCR key`, starting the expiry window on the first increment.
const INCR_WINDOW: &str = r"
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n";

// One per store, built once and never moved on a request path: size does not matter.
#[allow(clippy::large_enum_variant)]
enum Client {
    Single(redis::Client),
    Cluster(ClusterClient),
}

/// A live connection of either kind; clones share one multiplexed connection.
#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// Events are Redis pub/sub messages on this channel (after the key prefix). Pub/sub rather
/// than a stream: an event only invalidates a cache whose state is kept in keys anyway, so
/// nothing needs replaying, storing or trimming, and a subscriber that was away simply
/// forgets what it cached (see `subscribe_events`). On Redis Cluster a `PUBLISH` reaches
/// the subscribers of every node, so one subscription to any node hears the whole fleet.
const EVENTS_CHANNEL: &str = "events";

/// How many received events may wait for the subscriber before the subscription is dropped
/// (the subscriber then resubscribes and forgets its cache: nothing is missed silently).
const EVENT_BACKLOG: usize = 4096;

/// Redis-backed [`Store`].
pub struct RedisStore {
    client: Client,
    /// Where a subscription connects: the server, or each cluster seed node in turn.
    event_nodes: Vec<String>,
    /// Made on first use, inside the runtime that serves requests; a cluster connection that
    /// could not be made is tried again on the next call.
    conn: OnceCell<Conn>,
    prefix: String,
    timeout: Duration,
    compare_and_swap: Script,
    incr_window: Script,
    put_and_publish: Script,
    take_if: Script,
    decr_live: Script,
}

impl RedisStore {
    /// A store for `url` (which must be a Redis or Cluster URL). No connection is made yet.
    pub fn new(url: &StoreUrl, prefix: &str, timeout: Duration) -> Result<Self, StoreError> {
        let config_err = |e: redis::RedisError| StoreError::Config(e.to_string());
        let event_nodes = match url {
            StoreUrl::Redis(u) => vec![u.clone()],
            StoreUrl::Cluster(nodes) => nodes.clone(),
            StoreUrl::Memory => Vec::new(),
        };
        let client = match url {
            StoreUrl::Redis(u) => {
                Client::Single(redis::Client::open(u.as_str()).map_err(config_err)?)
            }
            StoreUrl::Cluster(nodes) => Client::Cluster(
                ClusterClient::builder(nodes.iter().map(String::as_str))
                    .connection_timeout(timeout)
                    .response_timeout(timeout)
                    .retries(1)
                    .build()
                    .map_err(config_err)?,
            ),
            StoreUrl::Memory => {
                return Err(StoreError::Config("memory:// is not a Redis URL".into()))
            }
        };
        Ok(Self {
            client,
            event_nodes,
            conn: OnceCell::new(),
            prefix: prefix.to_string(),
            timeout,
            compare_and_swap: Script::new(COMPARE_AND_SWAP),
            incr_window: Script::new(INCR_WINDOW),
            put_and_publish: Script::new(PUT_AND_PUBLISH),
            take_if: Script::new(TAKE_IF),
            decr_live: Script::new(DECR_LIVE),
        })
    }

    async fn connection(&self) -> Result<Conn, StoreError> {
        let conn = self
            .conn
            .get_or_try_init(|| async {
                match &self.client {
                    Client::Single(client) => {
                        let config = ConnectionManagerConfig::new()
                            .set_connection_timeout(Some(self.timeout))
                            .set_response_timeout(Some(self.timeout))
                            .set_number_of_retries(1)
                            .set_max_delay(Duration::from_secs(1));
                        ConnectionManager::new_lazy_with_config(client.clone(), config)
                            .map(Conn::Single)
                    }
                    Client::Cluster(client) => {
                        client.get_async_connection().await.map(Conn::Cluster)
                    }
                }
            })
            .await
            .map_err(unavailable)?;
        Ok(conn.clone())
    }

    /// Runs `op` on a connection, bounded by the timeout as a whole (connecting included).
    async fn run<T, F, Fut>(&self, op: F) -> Result<T, StoreError>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let call = async {
            let conn = self.connection().await?;
            op(conn).await.map_err(unavailable)
        };
        tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| StoreError::Timeout(self.timeout))?
    }

    async fn query<T: FromRedisValue>(&self, cmd: Cmd) -> Result<T, StoreError> {
        self.run(|mut c| async move { cmd.query_async(&mut c).await })
            .await
    }

    fn key(&self, key: &str) -> String {
        format!("{}{}", self.prefix, key)
    }
}

fn unavailable(e: redis::RedisError) -> StoreError {
    // redis-rs errors describe the failure (kind, server message), never the command's
    // arguments, so they are safe to carry into logs.
    StoreError::Unavailable(e.to_string())
}

/// The value in a `CONFIG GET maxmemory-policy` reply: `[name, value]` (RESP2) or a map
/// (RESP3); from a cluster, possibly one such reply per node, of which the first.
fn policy_from_reply(value: &Value) -> Option<String> {
    let text = |v: &Value| match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    };
    match value {
        Value::Array(items) if items.len() == 2 && text(&items[0]).is_some() => text(&items[1]),
        Value::Array(items) => items.iter().find_map(policy_from_reply),
        Value::Map(pairs) => pairs.iter().find_map(|(k, v)| match text(k) {
            Some(_) => text(v).or_else(|| policy_from_reply(v)),
            None => None,
        }),
        _ => None,
    }
}

fn ttl_ms(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

#[async_trait]
impl Store for RedisStore {
    async fn put(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StoreError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key(key)).arg(value).arg("PX").arg(ttl_ms(ttl));
        self.query::<()>(cmd).await
    }

    async fn put_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key(key))
            .arg(value)
            .arg("NX")
            .arg("PX")
            .arg(ttl_ms(ttl));
        let reply: Option<String> = self.query(cmd).await?;
        Ok(reply.is_some())
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(self.key(key));
        self.query(cmd).await
    }

    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut cmd = redis::cmd("GETDEL");
        cmd.arg(self.key(key));
        self.query(cmd).await
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: &[u8],
        new: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let key = self.key(key);
        let swapped: i64 = self
            .run(|mut c| async move {
                self.compare_and_swap
                    .key(key)
                    .arg(expected)
                    .arg(new)
                    .arg(ttl_ms(ttl))
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        Ok(swapped == 1)
    }

    async fn take_if(&self, key: &str, expected: &[u8]) -> Result<bool, StoreError> {
        let key = self.key(key);
        let taken: i64 = self
            .run(|mut c| async move {
                self.take_if
                    .key(key)
                    .arg(expected)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        Ok(taken == 1)
    }

    async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        let mut cmd = redis::cmd("DEL");
        cmd.arg(self.key(key));
        let removed: u64 = self.query(cmd).await?;
        Ok(removed > 0)
    }

    async fn incr(&self, key: &str, ttl: Duration) -> Result<u64, StoreError> {
        let key = self.key(key);
        self.run(|mut c| async move {
            self.incr_window
                .key(key)
                .arg(ttl_ms(ttl))
                .invoke_async(&mut c)
                .await
        })
        .await
    }

    /// One `MGET` (the keys share a slot, so Redis Cluster takes it too).
    async fn counts(&self, keys: &[&str]) -> Result<Vec<u64>, StoreError> {
        let mut cmd = redis::cmd("MGET");
        for key in keys {
            cmd.arg(self.key(key));
        }
        let values: Vec<Option<Vec<u8>>> = self.query(cmd).await?;
        Ok(values
            .iter()
            .map(|v| super::parse_count(v.as_deref()))
            .collect())
    }

    async fn decr(&self, key: &str) -> Result<(), StoreError> {
        let key = self.key(key);
        let _: i64 = self
            .run(|mut c| async move { self.decr_live.key(key).invoke_async(&mut c).await })
            .await?;
        Ok(())
    }

    /// `CONFIG GET maxmemory-policy`. A Redis that refuses `CONFIG` (renamed or disabled, as
    /// managed services do) is not an error: the policy is then unknown (`None`).
    async fn eviction_policy(&self) -> Result<Option<String>, StoreError> {
        let mut cmd = redis::cmd("CONFIG");
        cmd.arg("GET").arg("maxmemory-policy");
        let reply = self
            .run(|mut c| async move {
                match cmd.query_async::<Value>(&mut c).await {
                    Ok(value) => Ok(Some(value)),
                    // The server answered, with an error of its own: CONFIG is not allowed.
                    Err(e)
                        if matches!(
                            e.kind(),
                            redis::ErrorKind::Server(_) | redis::ErrorKind::Extension
                        ) =>
                    {
                        tracing::debug!(error = %e, "the store refuses CONFIG GET");
                        Ok(None)
                    }
                    Err(e) => Err(e),
                }
            })
            .await?;
        Ok(reply.and_then(|value| policy_from_reply(&value)))
    }

    /// One script: the channel is not a key, so on a cluster it runs on the key's node and
    /// the message still reaches every node's subscribers.
    async fn put_and_publish(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
        event: &str,
    ) -> Result<bool, StoreError> {
        let (key, channel) = (self.key(key), self.key(EVENTS_CHANNEL));
        let sent: i64 = self
            .run(|mut c| async move {
                self.put_and_publish
                    .key(key)
                    .arg(value)
                    .arg(ttl_ms(ttl))
                    .arg(channel)
                    .arg(event)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        Ok(sent == 1)
    }

    async fn publish_event(&self, event: &str) -> Result<(), StoreError> {
        let mut cmd = redis::cmd("PUBLISH");
        cmd.arg(self.key(EVENTS_CHANNEL)).arg(event);
        self.query::<u64>(cmd).await.map(|_| ())
    }

    /// A pub/sub connection of its own (to the server, or to the first cluster node that
    /// answers), forwarded into a channel by a task that ends with the connection.
    async fn subscribe_events(
        &self,
    ) -> Result<Option<tokio::sync::mpsc::Receiver<String>>, StoreError> {
        let channel = self.key(EVENTS_CHANNEL);
        let mut last_error = StoreError::Unavailable("no node to subscribe to".into());
        for node in &self.event_nodes {
            let subscribe = async {
                let client = redis::Client::open(node.as_str())?;
                let mut pubsub = client.get_async_pubsub().await?;
                pubsub.subscribe(&channel).await?;
                Ok::<_, redis::RedisError>(pubsub)
            };
            let pubsub = match tokio::time::timeout(self.timeout, subscribe).await {
                Ok(Ok(pubsub)) => pubsub,
                Ok(Err(e)) => {
                    last_error = unavailable(e);
                    continue;
                }
                Err(_) => {
                    last_error = StoreError::Timeout(self.timeout);
                    continue;
                }
            };
            let (tx, rx) = tokio::sync::mpsc::channel(EVENT_BACKLOG);
            tokio::spawn(async move {
                use futures_util::StreamExt;
                let mut messages = pubsub.into_on_message();
                loop {
                    let message = tokio::select! {
                        _ = tx.closed() => break,
                        message = messages.next() => message,
                    };
                    // `None`: the connection is gone; dropping `tx` tells the subscriber.
                    let Some(message) = message else { break };
                    let Ok(event) = message.get_payload::<String>() else {
                        continue;
                    };
                    if tx.try_send(event).is_err() {
                        break; // the subscriber is too far behind: it resubscribes
                    }
                }
            });
            return Ok(Some(rx));
        }
        Err(last_error)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let pong: String = self.query(redis::cmd("PING")).await?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(StoreError::Unavailable(format!(
                "unexpected PING reply `{pong}`"
            )))
        }
    }
}
