//! The accept loop: connection limit, one task per connection, graceful
//! shutdown and background log maintenance.
//!
//! Shutdown: stop accepting; tell every connection to stop reading new
//! requests (a request already being handled finishes and its response is
//! written); wait for them (bounded); flush and close every log; leave the
//! clean-shutdown marker.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::broker::Broker;
use crate::connection::{read_frame, FrameError};
use crate::protocol;

/// How long shutdown waits for in-flight requests before closing anyway.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Tick of the maintenance task: group session and rebalance timeouts are
/// checked this often; time-based flushes too (retention has its own interval).
const MAINTENANCE_TICK: Duration = Duration::from_millis(100);

/// Serves Kafka clients on `listener` until `shutdown` completes, then shuts
/// down gracefully. The binary and the integration tests both call this.
pub async fn run(
    listener: TcpListener,
    broker: Arc<Broker>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let limit = Arc::new(Semaphore::new(broker.config.max_connections as usize));
    let mut connections = JoinSet::new();
    let maintenance = tokio::spawn(maintenance_loop(broker.clone(), stop_rx.clone()));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let Ok(permit) = limit.clone().try_acquire_owned() else {
                        tracing::warn!(%peer, max = broker.config.max_connections, "connection limit reached; closing new connection");
                        continue;
                    };
                    let broker = broker.clone();
                    let stop = stop_rx.clone();
                    connections.spawn(async move {
                        serve_connection(stream, peer, broker, stop).await;
                        drop(permit);
                    });
                }
                Err(e) => {
                    // Typically EMFILE: back off instead of spinning.
                    tracing::error!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    tracing::info!("shutting down: no new connections; draining in-flight requests");
    drop(listener);
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
    let broker2 = broker.clone();
    tokio::task::spawn_blocking(move || broker2.logs.shutdown())
        .await
        .map_err(std::io::Error::other)??;
    tracing::info!("shutdown complete");
    Ok(())
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    broker: Arc<Broker>,
    mut stop: watch::Receiver<bool>,
) {
    // Kafka clients pipeline small requests; Nagle would add 40 ms stalls.
    let _ = stream.set_nodelay(true);
    let Ok(local) = stream.local_addr() else {
        return;
    };
    let (reader, mut writer) = stream.into_split();
    let mut reader = BufReader::with_capacity(64 * 1024, reader);
    let max = broker.config.socket_request_max_bytes as usize;
    // Reused across requests: see `read_frame` and `handle_frame`.
    let mut read_buf = BytesMut::new();
    let mut write_buf = BytesMut::new();
    let conn = protocol::Connection {
        broker,
        local_addr: local,
        peer_addr: peer,
    };
    loop {
        // Only the wait for the next request races with shutdown: a request
        // already read is always answered.
        let frame = tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => break,
            frame = read_frame(&mut reader, &mut read_buf, max) => frame,
        };
        let frame = match frame {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            // A peer vanishing mid-frame is routine; a malformed frame is not.
            Err(FrameError::Io(e)) => {
                tracing::debug!(%peer, error = %e, "connection lost");
                break;
            }
            Err(e) => {
                tracing::warn!(%peer, error = %e, "closing connection: bad frame");
                break;
            }
        };
        write_buf.clear();
        match protocol::handle_frame(&conn, frame, &mut write_buf).await {
            Ok(true) => {
                if writer.write_all(&write_buf).await.is_err() {
                    break;
                }
                // Do not keep a huge buffer alive after one large Fetch.
                if write_buf.capacity() > 8 << 20 {
                    write_buf = BytesMut::new();
                }
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(%peer, error = %e, "closing connection");
                break;
            }
        }
    }
    let _ = writer.shutdown().await;
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
            .logs
            .run_maintenance(crate::log::now_ms(), retention)
            .await;
    }
}
