//! The accept loops (one per listener: PLAINTEXT, SSL, SASL_PLAINTEXT,
//! SASL_SSL), connection limits (total and per IP), TLS handshakes, one
//! task per connection with an idle timeout, graceful shutdown and
//! background log maintenance.
//!
//! Shutdown: stop accepting; tell every connection to stop reading new
//! requests (a request already being handled finishes and its response is
//! written); wait for them (bounded); flush and close every log; leave the
//! clean-shutdown marker.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use crate::broker::Broker;
use crate::config::Config;
use crate::connection::{FrameError, FrameReader};
use crate::protocol;
use crate::security::sasl::AuthState;
use crate::security::{Listener, Principal, SecurityProtocol};

/// How long shutdown waits for in-flight requests before closing anyway.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Tick of the maintenance task: group session and rebalance timeouts are
/// checked this often; time-based flushes too (retention has its own interval).
const MAINTENANCE_TICK: Duration = Duration::from_millis(100);

/// A bound listener: its socket, what connections on it learn, and its
/// TLS acceptor when it is SSL or SASL_SSL.
pub struct BoundListener {
    tcp: TcpListener,
    info: Arc<Listener>,
    tls: Option<TlsAcceptor>,
}

impl BoundListener {
    /// A PLAINTEXT listener on an already bound socket.
    pub fn plaintext(tcp: TcpListener) -> std::io::Result<BoundListener> {
        let port = tcp.local_addr()?.port();
        Ok(BoundListener {
            tcp,
            info: Arc::new(Listener {
                protocol: SecurityProtocol::Plaintext,
                mechanisms: Vec::new(),
                port,
            }),
            tls: None,
        })
    }

    /// Binds `address` as a listener of `protocol`.
    pub async fn bind(
        address: &str,
        protocol: SecurityProtocol,
        mechanisms: Vec<String>,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> anyhow::Result<BoundListener> {
        let tcp = TcpListener::bind(address)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {address}: {e}"))?;
        let port = tcp.local_addr()?.port();
        let tls = if protocol.tls() {
            let config = tls.ok_or_else(|| anyhow::anyhow!("{address}: TLS is not configured"))?;
            Some(TlsAcceptor::from(config))
        } else {
            None
        };
        let mechanisms = if protocol.sasl() {
            mechanisms
        } else {
            Vec::new()
        };
        Ok(BoundListener {
            tcp,
            info: Arc::new(Listener {
                protocol,
                mechanisms,
                port,
            }),
            tls,
        })
    }

    /// Binds `listen` (PLAINTEXT) and every `[[listeners]]` entry, loading
    /// the TLS certificate once per kind of TLS listener.
    pub async fn bind_all(config: &Config) -> anyhow::Result<Vec<BoundListener>> {
        let mut tls_configs: Vec<(SecurityProtocol, Arc<rustls::ServerConfig>)> = Vec::new();
        let mut bound = vec![
            BoundListener::bind(&config.listen, SecurityProtocol::Plaintext, vec![], None).await?,
        ];
        for l in &config.listeners {
            let protocol = SecurityProtocol::parse(&l.security_protocol)
                .ok_or_else(|| anyhow::anyhow!("bad security-protocol {}", l.security_protocol))?;
            let tls = if protocol.tls() {
                match tls_configs.iter().find(|(p, _)| *p == protocol) {
                    Some((_, c)) => Some(c.clone()),
                    None => {
                        let c = crate::security::tls::server_config(config, protocol)?;
                        tls_configs.push((protocol, c.clone()));
                        Some(c)
                    }
                }
            } else {
                None
            };
            bound.push(
                BoundListener::bind(&l.address, protocol, l.sasl_enabled_mechanisms.clone(), tls)
                    .await?,
            );
        }
        Ok(bound)
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }

    pub fn protocol(&self) -> SecurityProtocol {
        self.info.protocol
    }
}

/// Serves Kafka clients on one PLAINTEXT `listener` until `shutdown`
/// completes (the integration tests' entry point); see [`run_listeners`].
pub async fn run(
    listener: TcpListener,
    broker: Arc<Broker>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    run_listeners(vec![BoundListener::plaintext(listener)?], broker, shutdown).await
}

/// An accepted socket and the listener it came through.
struct Accepted {
    stream: TcpStream,
    peer: SocketAddr,
    info: Arc<Listener>,
    tls: Option<TlsAcceptor>,
}

/// Serves Kafka clients on every listener until `shutdown` completes, then
/// shuts down gracefully. The binary calls this.
pub async fn run_listeners(
    listeners: Vec<BoundListener>,
    broker: Arc<Broker>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let limit = Arc::new(Semaphore::new(broker.config.max_connections as usize));
    let per_ip = PerIpLimit::new(broker.config.max_connections_per_ip);
    let mut connections = JoinSet::new();
    let maintenance = tokio::spawn(maintenance_loop(broker.clone(), stop_rx.clone()));
    let cleaner = tokio::spawn(cleaner_loop(broker.clone(), stop_rx.clone()));
    // One accept task per listener, feeding this loop (which owns the
    // connection set and the limits).
    let (accepted_tx, mut accepted_rx) = tokio::sync::mpsc::channel::<Accepted>(64);
    let mut acceptors = JoinSet::new();
    for l in listeners {
        acceptors.spawn(accept_loop(l, accepted_tx.clone()));
    }
    drop(accepted_tx);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = accepted_rx.recv() => {
                let Some(Accepted { stream, peer, info, tls }) = accepted else { break };
                let Ok(permit) = limit.clone().try_acquire_owned() else {
                    tracing::warn!(%peer, max = broker.config.max_connections, "connection limit reached; closing new connection");
                    continue;
                };
                let Some(slot) = per_ip.acquire(peer.ip()) else {
                    tracing::warn!(%peer, max = broker.config.max_connections_per_ip, "per-IP connection limit reached; closing new connection");
                    continue;
                };
                let broker = broker.clone();
                let stop = stop_rx.clone();
                connections.spawn(async move {
                    start_connection(stream, peer, info, tls, broker, stop).await;
                    drop((permit, slot));
                });
            }
        }
    }
    tracing::info!("shutting down: no new connections; draining in-flight requests");
    acceptors.shutdown().await;
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("drain timed out; closing remaining connections");
        connections.shutdown().await;
    }
    let _ = maintenance.await;
    // A cleaning round in progress finishes (its swaps are crash-safe, but
    // the partitions must not be closed under it).
    let _ = cleaner.await;
    let broker2 = broker.clone();
    tokio::task::spawn_blocking(move || broker2.logs.shutdown())
        .await
        .map_err(std::io::Error::other)??;
    tracing::info!("shutdown complete");
    Ok(())
}

async fn accept_loop(l: BoundListener, out: tokio::sync::mpsc::Sender<Accepted>) {
    loop {
        match l.tcp.accept().await {
            Ok((stream, peer)) => {
                let accepted = Accepted {
                    stream,
                    peer,
                    info: l.info.clone(),
                    tls: l.tls.clone(),
                };
                if out.send(accepted).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                // Typically EMFILE: back off instead of spinning.
                tracing::error!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// How long a client has for its TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// TLS (when the listener has it), the connection's principal, then the
/// request loop.
async fn start_connection(
    stream: TcpStream,
    peer: SocketAddr,
    info: Arc<Listener>,
    tls: Option<TlsAcceptor>,
    broker: Arc<Broker>,
    stop: watch::Receiver<bool>,
) {
    // Kafka clients pipeline small requests; Nagle would add 40 ms stalls.
    let _ = stream.set_nodelay(true);
    let Ok(local) = stream.local_addr() else {
        return;
    };
    let Some(acceptor) = tls else {
        let auth = AuthState::new(&info, None);
        let (reader, writer) = stream.into_split();
        serve_connection(reader, writer, local, peer, info, auth, broker, stop).await;
        return;
    };
    let stream = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::info!(%peer, error = %e, "TLS handshake failed; closing");
            return;
        }
        Err(_) => {
            tracing::info!(%peer, "TLS handshake timed out; closing");
            return;
        }
    };
    // mTLS: the verified certificate's subject is the principal; a
    // certificate whose subject cannot be read is refused, not ANONYMOUS.
    let principal = match stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
    {
        None => None,
        Some(cert) => match crate::security::tls::subject_name(cert) {
            Some(subject) => Some(Principal::user(&subject)),
            None => {
                tracing::info!(%peer, "client certificate subject unreadable; closing");
                return;
            }
        },
    };
    let auth = AuthState::new(&info, principal);
    let (reader, writer) = tokio::io::split(stream);
    serve_connection(reader, writer, local, peer, info, auth, broker, stop).await;
}

#[allow(clippy::too_many_arguments)]
async fn serve_connection<R, W>(
    reader: R,
    mut writer: W,
    local: SocketAddr,
    peer: SocketAddr,
    listener: Arc<Listener>,
    auth: AuthState,
    broker: Arc<Broker>,
    mut stop: watch::Receiver<bool>,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let _open = crate::metrics::OpenConnection::new(broker.clone());
    let mut reader = BufReader::with_capacity(64 * 1024, reader);
    let max = broker.config.socket_request_max_bytes as usize;
    let budget = broker.request_budget.clone();
    // Capped so that `Instant + idle` cannot overflow.
    let idle = Duration::from_millis(broker.config.connections_max_idle_ms.min(1 << 40));
    // Idle since the last answered request. The timer is re-armed lazily
    // when it fires early, so the hot path only stores an `Instant`.
    let mut last_active = Instant::now();
    let idle_timer = tokio::time::sleep(idle);
    tokio::pin!(idle_timer);
    // Reused across requests: see `FrameReader::read_frame` and `handle_frame`.
    let mut read_buf = BytesMut::new();
    let mut write_buf = BytesMut::new();
    let mut frames = FrameReader::default();
    // Responses behind a deferred Produce (fsync pending), in request order.
    // Invariant: empty, or its front is `Pending::Waiting`; `write_buf`
    // holds responses that precede all of it.
    let mut queue: VecDeque<Pending> = VecDeque::new();
    // Set when SASL failed: the close is delayed after the error response.
    let mut auth_failed = false;
    let conn = protocol::Connection {
        broker,
        local_addr: local,
        peer_addr: peer,
        id: NEXT_CONNECTION.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        listener,
        auth: Mutex::new(auth),
    };
    loop {
        // Back-pressure: bound the produces waiting on fsyncs.
        if queue.len() >= MAX_DEFERRED {
            if !answer_head(&mut queue, &mut write_buf, peer).await
                || !flush(&mut writer, &mut write_buf).await
            {
                break;
            }
            continue;
        }
        // Only the wait for the next request races with shutdown: a request
        // already read is always answered. Reading is cancel-safe, so it also
        // races with the oldest deferred response becoming ready.
        let event = tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => None,
            ok = answer_head(&mut queue, &mut write_buf, peer), if !queue.is_empty() => Some(Err(ok)),
            frame = frames.read_frame(&mut reader, &mut read_buf, conn.max_frame(max), &budget) => Some(Ok(frame)),
            // Idle: nothing in flight (a deferred produce is in flight).
            () = &mut idle_timer, if queue.is_empty() => {
                let deadline = last_active + idle;
                if Instant::now() < deadline {
                    idle_timer.as_mut().reset(deadline);
                    continue;
                }
                tracing::debug!(%peer, partial_request = frames.in_frame(), "closing idle connection (connections-max-idle-ms)");
                break;
            }
        };
        let event = match event {
            None => break,
            Some(Err(answered)) => {
                if !answered || !flush(&mut writer, &mut write_buf).await {
                    break;
                }
                continue;
            }
            Some(Ok(frame)) => frame,
        };
        // The frame holds its share of the request budget until handled.
        let (frame, _budget) = match event {
            Ok(Some(frame)) => (frame.bytes, frame.budget),
            // A peer vanishing mid-frame is routine; a malformed frame is not.
            Ok(None) => break,
            Err(FrameError::Io(e)) => {
                tracing::debug!(%peer, error = %e, "connection lost");
                break;
            }
            Err(e) => {
                tracing::warn!(%peer, error = %e, "closing connection: bad frame");
                break;
            }
        };
        // Only produces pipeline behind a deferred produce; anything else
        // is handled after every earlier request is answered, as Kafka does.
        if !queue.is_empty()
            && !is_produce(&frame)
            && !drain(&mut queue, &mut write_buf, peer).await
        {
            break;
        }
        // Requests that may wait (Fetch long polls, JoinGroup, SyncGroup)
        // must not hold back responses already computed.
        if may_wait(&frame) && !flush(&mut writer, &mut write_buf).await {
            break;
        }
        // Behind a deferred response, an immediate one is queued, not written.
        let mut behind = BytesMut::new();
        let out = if queue.is_empty() {
            &mut write_buf
        } else {
            &mut behind
        };
        let mark = out.len();
        match protocol::handle_frame(&conn, frame, out).await {
            Ok(protocol::Handled::Answered(_)) => {}
            Ok(protocol::Handled::Deferred(fut)) => queue.push_back(Pending::Waiting(fut)),
            // An injected fault: close instead of answering (earlier
            // responses are still delivered below).
            Ok(protocol::Handled::Disconnect) => {
                if !behind.is_empty() {
                    queue.push_back(Pending::Ready(behind));
                }
                break;
            }
            // Written after the loop, with everything before it; then closed.
            Ok(protocol::Handled::Close) => {
                if !behind.is_empty() {
                    queue.push_back(Pending::Ready(behind));
                }
                auth_failed = true;
                break;
            }
            Err(e) => {
                // Drop whatever a failed encode left behind; earlier responses stay.
                out.truncate(mark);
                tracing::warn!(%peer, error = %e, "closing connection");
                break;
            }
        }
        if !behind.is_empty() {
            queue.push_back(Pending::Ready(behind));
        }
        last_active = Instant::now();
        // Pipelined requests already buffered are answered first and their
        // responses written together: one write syscall instead of many.
        if (!frame_buffered(reader.buffer()) || write_buf.len() >= 1 << 20)
            && !flush(&mut writer, &mut write_buf).await
        {
            break;
        }
    }
    // Responses of requests handled before a close are still delivered.
    drain(&mut queue, &mut write_buf, peer).await;
    let _ = flush(&mut writer, &mut write_buf).await;
    if auth_failed {
        let delay = conn.broker.config.connection_failed_authentication_delay_ms;
        tokio::time::sleep(Duration::from_millis(delay.min(60_000))).await;
    }
    let _ = writer.shutdown().await;
    // Share sessions die with their connection: their records go back.
    conn.broker.share.connection_closed(conn.id).await;
}

/// Connections per client IP address (`max-connections-per-ip`).
#[derive(Clone)]
struct PerIpLimit {
    max: u32,
    /// A std mutex: held for a map update on accept and on close, never
    /// across an await.
    counts: Arc<Mutex<HashMap<IpAddr, u32>>>,
}

/// One connection's place in [`PerIpLimit`], given back on drop.
struct IpSlot {
    limit: PerIpLimit,
    ip: IpAddr,
}

impl PerIpLimit {
    fn new(max: u32) -> PerIpLimit {
        PerIpLimit {
            max,
            counts: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    fn acquire(&self, ip: IpAddr) -> Option<IpSlot> {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let n = counts.entry(ip).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(IpSlot {
            limit: self.clone(),
            ip,
        })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut counts = self.limit.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = counts.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// Deferred produces a connection may have waiting for fsyncs at once.
const MAX_DEFERRED: usize = 64;

/// A response in a connection's ordered queue.
enum Pending {
    Ready(BytesMut),
    Waiting(protocol::DeferredResponse),
}

fn is_produce(frame: &[u8]) -> bool {
    frame.len() >= 2 && i16::from_be_bytes([frame[0], frame[1]]) == 0
}

/// Waits for the queue's front (a deferred response), then moves it and
/// the ready responses behind it into `out`. False if it failed (the
/// connection must close). Cancel-safe: nothing moves until the front is
/// done.
async fn answer_head(queue: &mut VecDeque<Pending>, out: &mut BytesMut, peer: SocketAddr) -> bool {
    let result = match queue.front_mut() {
        Some(Pending::Waiting(fut)) => fut.await,
        Some(Pending::Ready(_)) | None => Ok(BytesMut::new()),
    };
    queue.pop_front();
    match result {
        Ok(bytes) => out.extend_from_slice(&bytes),
        Err(e) => {
            tracing::warn!(%peer, error = %e, "closing connection");
            return false;
        }
    }
    while let Some(Pending::Ready(_)) = queue.front() {
        if let Some(Pending::Ready(bytes)) = queue.pop_front() {
            out.extend_from_slice(&bytes);
        }
    }
    true
}

/// Answers everything queued, in order.
async fn drain(queue: &mut VecDeque<Pending>, out: &mut BytesMut, peer: SocketAddr) -> bool {
    while !queue.is_empty() {
        if !answer_head(queue, out, peer).await {
            return false;
        }
    }
    true
}

/// Writes and clears the pending responses; false if the peer is gone.
async fn flush<W: AsyncWrite + Unpin>(writer: &mut W, buf: &mut BytesMut) -> bool {
    if buf.is_empty() {
        return true;
    }
    let ok = writer.write_all(buf).await.is_ok();
    buf.clear();
    // Do not keep a huge buffer alive after one large Fetch.
    if buf.capacity() > 8 << 20 {
        *buf = BytesMut::new();
    }
    ok
}

/// Whether `buf` starts with a whole request frame.
fn frame_buffered(buf: &[u8]) -> bool {
    buf.len() >= 4 && {
        let len = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
        len >= 0 && buf.len() - 4 >= len as usize
    }
}

/// Fetch (1), JoinGroup (11), SyncGroup (14) and ShareFetch (78) can be
/// parked for a while.
fn may_wait(frame: &[u8]) -> bool {
    frame.len() >= 2 && matches!(i16::from_be_bytes([frame[0], frame[1]]), 1 | 11 | 14 | 78)
}

/// Connection ids, unique for the process's life.
static NEXT_CONNECTION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// The log cleaner: a round whenever a compacted log rolled a segment or
/// `log-cleaner-backoff-ms` passed, on blocking threads.
async fn cleaner_loop(broker: Arc<Broker>, mut stop: watch::Receiver<bool>) {
    if !broker.config.log_cleaner_enable {
        return;
    }
    let backoff = Duration::from_millis(broker.config.log_cleaner_backoff_ms);
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            _ = crate::log::cleaner::sleep(backoff) => {}
        }
        let b = broker.clone();
        let _ = tokio::task::spawn_blocking(move || b.logs.clean_once(crate::log::now_ms())).await;
    }
}

async fn maintenance_loop(broker: Arc<Broker>, mut stop: watch::Receiver<bool>) {
    let retention_every = Duration::from_millis(broker.config.log_retention_check_interval_ms);
    let mut last_retention = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(MAINTENANCE_TICK);
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            _ = tick.tick() => {}
        }
        let retention = last_retention.elapsed() >= retention_every;
        if retention {
            last_retention = tokio::time::Instant::now();
        }
        broker.groups.tick().await;
        broker
            .groups
            .resolve_regexes(|| crate::handlers::consumer::topic_image(&broker))
            .await;
        broker
            .share
            .tick(&broker.logs, &broker.group_configs, crate::log::now_ms())
            .await;
        broker
            .txns
            .tick_at(crate::log::now_ms(), broker.participants())
            .await;
        broker
            .logs
            .run_maintenance(crate::log::now_ms(), retention)
            .await;
    }
}
