//! The member connection: joins the fleet, heartbeats, and turns the fleet's notifications into
//! [`Event`]s; when the connection is lost it says so and joins again.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::error::FleetError;
use super::store::{self, SelfReport};
use super::{Event, Message};
use crate::context::ProxyContext;

/// How often a member heartbeats (and how often followers look at the stored state without a
/// notification).
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// How long to wait before joining again after the connection was lost.
const REJOIN_DELAY: Duration = Duration::from_secs(1);
/// The longest wait between attempts to join.
const MAX_REJOIN_DELAY: Duration = Duration::from_secs(10);

/// Starts the member task and waits until the first join has succeeded or failed (a failure is
/// logged; the task keeps trying). `report` says what this member publishes about itself.
pub async fn start(
    ctx: &Arc<ProxyContext>,
    report: impl Fn(&ProxyContext) -> SelfReport + Send + Sync + 'static,
) {
    let (joined_tx, joined_rx) = tokio::sync::oneshot::channel::<()>();
    let ctx_task = ctx.clone();
    tokio::spawn(async move {
        let mut joined_tx = Some(joined_tx);
        let mut delay = REJOIN_DELAY;
        while !ctx_task.fleet.has_left() {
            match run_once(&ctx_task, &report, &mut joined_tx).await {
                Ok(()) if ctx_task.fleet.has_left() => {}
                Ok(()) => {
                    delay = REJOIN_DELAY;
                    tracing::warn!("fleet connection lost; joining again");
                }
                Err(error) => {
                    tracing::warn!(%error, retry_in_s = delay.as_secs(), "cannot join the fleet");
                }
            }
            ctx_task.fleet.set_client(None);
            ctx_task.fleet.forget_driving();
            ctx_task.fleet.emit(Event::Lost);
            // A failed first attempt still lets startup go on.
            if let Some(tx) = joined_tx.take() {
                let _ = tx.send(());
            }
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = ctx_task.fleet.left() => {}
            }
            // A member that keeps failing to join (the backend down, no privilege on schema
            // `duet`) tries less often, up to every MAX_REJOIN_DELAY.
            delay = (delay * 2).min(MAX_REJOIN_DELAY);
        }
    });
    let _ = tokio::time::timeout(ctx.config.connect_timeout * 2, joined_rx).await;
}

/// One connection's life: join, then heartbeat and relay notifications until it ends.
async fn run_once(
    ctx: &Arc<ProxyContext>,
    report: &(impl Fn(&ProxyContext) -> SelfReport + Send + Sync),
    joined: &mut Option<tokio::sync::oneshot::Sender<()>>,
) -> Result<(), FleetError> {
    let (tx, mut notifications) = mpsc::unbounded_channel();
    let mut client = crate::control::connection::connect_listening(ctx, tx)
        .await
        .map_err(FleetError::Connect)?;
    let db = FleetError::db;
    duet_shadow::migrate::state::ensure_schema(&mut client).await?;
    client
        .batch_execute(store::ENSURE_SQL)
        .await
        .map_err(db("creating duet.members"))?;
    client
        .batch_execute(&format!("LISTEN {}", super::message::CHANNEL))
        .await
        .map_err(db("listening for the fleet"))?;
    // Ask the server to notice a vanished peer on this connection within seconds, so a member
    // whose host dies without closing its connection drops out.
    client
        .batch_execute(
            "SET tcp_keepalives_idle = 5; SET tcp_keepalives_interval = 2; SET tcp_keepalives_count = 3",
        )
        .await
        .map_err(db("setting keepalives"))?;
    let id = ctx.fleet.id().to_owned();
    store::register(&mut client, &id, &report(ctx))
        .await
        .map_err(db("registering in duet.members"))?;
    let client = Arc::new(client);
    match store::live_members(client.as_ref(), &id).await {
        Ok(members) => ctx.fleet.set_members(members),
        Err(err) => tracing::debug!(%err, "reading the fleet's members"),
    }
    ctx.fleet.set_client(Some(client.clone()));
    tracing::info!(member = %id, "joined the fleet");
    ctx.fleet.emit(Event::Joined);
    if let Some(tx) = joined.take() {
        let _ = tx.send(());
    }
    let mut tick = tokio::time::interval(HEARTBEAT);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            notification = notifications.recv() => match notification {
                Some(n) => {
                    if let Some(message) = Message::parse(n.payload()) {
                        ctx.fleet.emit(Event::Message(message));
                    }
                }
                None => return Ok(()),
            },
            _ = ctx.fleet.left() => {
                if let Err(err) = client
                    .execute("DELETE FROM duet.members WHERE id = $1", &[&id])
                    .await
                {
                    tracing::debug!(%err, "leaving the fleet");
                }
                tracing::info!(member = %id, "left the fleet");
                return Ok(());
            }
            _ = tick.tick() => {
                match store::heartbeat(client.as_ref(), &id, &report(ctx)).await {
                    Ok(members) => ctx.fleet.set_members(members),
                    Err(err) if client.is_closed() => {
                        tracing::debug!(%err, "heartbeat on a closed connection");
                        return Ok(());
                    }
                    Err(err) => tracing::warn!(%err, "fleet heartbeat failed"),
                }
            }
        }
    }
}
