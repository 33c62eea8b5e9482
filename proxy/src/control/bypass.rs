//! Bypassing writers: connections that write a table under migration without going through
//! duet (a job connected straight to PostgreSQL, a second proxy, psql). Their writes are not
//! dual-written, so the shadow misses them until verification repairs it, and after the flip they
//! are not mirrored back into the old shape.
//!
//! What duet does: while a migration is active, every ~500 ms it lists the backends of the
//! table's database that hold `RowExclusiveLock` or a stronger write lock (`ShareRowExclusive`,
//! `Exclusive`, `AccessExclusive`) on the table, its shadow or its old shape, leaving out the
//! backends of duet's own client sessions and of its control connections. Each one is recorded
//! (pid, user, application_name, client address, last seen) and shown by `status`. Before a
//! cutover, if any was seen since the last verification, verify and repair run again (that
//! reconciles their writes; a writer that disappears between two samples counts as seen then,
//! since it may have committed after the last verification began), and a cutover is refused
//! while one is active (seen in the last sample) unless forced; `complete` is refused when one was seen since the flip unless forced.
//! Sampling can miss a writer whose transaction is shorter than the interval; verification is
//! what guarantees the copy, the sampler is the early warning.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use duet_shadow::ident::shadow_table_name;

use super::{connection, BypassWriter, Migration};
use crate::context::ProxyContext;

/// How often the locks are sampled.
pub const SAMPLE_INTERVAL: Duration = Duration::from_millis(500);

/// Starts the sampler of `m`; it ends when the migration is finished.
pub fn spawn_sampler(ctx: &Arc<ProxyContext>, m: &Arc<Migration>) {
    let task = tokio::spawn({
        let (ctx, m) = (ctx.clone(), m.clone());
        async move {
            let mut client = None;
            while !m.phase().is_terminal() {
                tokio::time::sleep(SAMPLE_INTERVAL).await;
                if client.is_none() {
                    client = connection::connect(&ctx).await.ok();
                }
                let Some(c) = &client else { continue };
                if let Err(err) = sample(&ctx, &m, c).await {
                    tracing::debug!(migration = m.id, %err, "bypass sample failed");
                    client = None;
                }
            }
        }
    });
    m.set_sampler(task);
}

async fn sample(
    ctx: &ProxyContext,
    m: &Migration,
    client: &tokio_postgres::Client,
) -> Result<(), tokio_postgres::Error> {
    let table = &m.plan.table;
    let names: Vec<String> = [
        table.name.clone(),
        shadow_table_name(&table.name),
        format!("{}__duet_old", table.name),
    ]
    .iter()
    .map(|n| {
        duet_shadow::ident::quote_ident(&table.schema) + "." + &duet_shadow::ident::quote_ident(n)
    })
    .collect();
    let rows = client
        .query(
            "SELECT DISTINCT l.pid, coalesce(a.usename::text, ''),
                    coalesce(a.application_name, ''), coalesce(a.client_addr::text, '')
             FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
             WHERE l.locktype = 'relation' AND l.granted
               AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
               AND l.relation IN (SELECT to_regclass(n)::oid FROM unnest($1::text[]) n)
               AND l.mode IN ('RowExclusiveLock', 'ShareRowExclusiveLock', 'ExclusiveLock',
                              'AccessExclusiveLock')
               AND l.pid <> pg_backend_pid()",
            &[&names],
        )
        .await?;
    let mut ours = HashSet::new();
    ctx.sessions.for_each(|s| {
        ours.insert(s.backend_pid());
    });
    let now = Instant::now();
    let mut live = m.live();
    let mut seen = HashSet::new();
    for row in rows {
        let pid: i32 = row.get(0);
        if ours.contains(&pid) || ctx.migrations.is_control_pid(pid) {
            continue;
        }
        seen.insert(pid);
        live.bypass.insert(
            pid,
            BypassWriter {
                pid,
                user: row.get(1),
                application_name: row.get(2),
                client_addr: row.get(3),
                last_seen: now,
                active: true,
            },
        );
    }
    // A writer that is gone has committed (or rolled back) since the last sample.
    for w in live.bypass.values_mut() {
        if w.active && !seen.contains(&w.pid) {
            w.active = false;
        }
    }
    Ok(())
}

/// The writers the last sample saw inside a transaction on the table, described (for a flip that
/// could not take its lock).
pub fn active_writers(m: &Migration) -> Vec<String> {
    m.live()
        .bypass
        .values()
        .filter(|w| w.active)
        .map(|w| {
            format!(
                "pid {} (user {}, application {:?}, from {})",
                w.pid,
                w.user,
                w.application_name,
                if w.client_addr.is_empty() {
                    "a unix socket"
                } else {
                    &w.client_addr
                }
            )
        })
        .collect()
}
