//! duet's own control connections (backend URL credentials) and guarded step execution.

use std::time::Duration;

use duet_shadow::migrate::guard::{
    backoff_with_jitter, is_retryable, GuardConfig, GuardedConnection, PhaseStep,
};
use duet_shadow::migrate::{DbErrorText, MigrateError, Phase};
use duet_shadow::plan::Step;
use tokio::sync::mpsc;
use tokio_postgres::config::{SslMode as PgSslMode, SslNegotiation as PgSslNegotiation};
use tokio_postgres::{AsyncMessage, Client, Notification};

use crate::backend_tls::{BackendTls, MakeRustlsConnect, RustlsStream};
use crate::backend_url::{BackendAddr, BackendUrl, SslMode, SslNegotiation};
use crate::context::ProxyContext;

/// Why a control connection, or a guarded step run on one, failed. The text is what the operator
/// reads (the server's own message included); the typed cause stays reachable as the source.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The backend could not be reached, or refused the connection.
    #[error("cannot open a control connection to {addr} as {user}: {}", connect_error_text(.source))]
    Connect {
        /// The backend's address.
        addr: String,
        /// The user duet connects as.
        user: String,
        /// What tokio-postgres reported.
        #[source]
        source: tokio_postgres::Error,
    },
    /// The connection was made, but its first query (its pid, the server's version) failed.
    #[error("control connection: {}", DbErrorText(.source))]
    Setup {
        /// The failed query's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// Setting up the guard, or a guarded step, failed (the step's label is in the message).
    #[error(transparent)]
    Step(#[from] MigrateError),
    /// Dropping the invalid index a failed concurrent build left behind failed.
    #[error("{step}: dropping an invalid index left by an earlier attempt: {}", DbErrorText(.source))]
    InvalidLeftover {
        /// The step, as labelled in messages.
        step: String,
        /// The server's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// A step that runs outside a transaction block failed, after its retries.
    #[error("{step}: {} (after {attempts} attempt(s))", DbErrorText(.source))]
    OutsideTransaction {
        /// The step, as labelled in messages.
        step: String,
        /// How many times it was tried.
        attempts: u32,
        /// The last attempt's error.
        #[source]
        source: tokio_postgres::Error,
    },
}

/// The tokio-postgres configuration of a control connection: the backend URL's address, user,
/// password, database and TLS mode. Connect it with [`tls_connector`]'s hook: the mode says
/// whether TLS is used, the hook how (roots, client certificate, negotiation).
///
/// tokio-postgres knows disable, prefer and require; verify-ca and verify-full are require here
/// with the checks in the hook, and `allow` starts as disable (its TLS retry is in `open`). A
/// unix-socket backend never uses TLS, as with libpq.
pub fn control_config(url: &BackendUrl, connect_timeout: Duration) -> tokio_postgres::Config {
    let mut config = tokio_postgres::Config::new();
    let unix = match &url.addr {
        BackendAddr::Tcp { host, port } => {
            config.host(host).port(*port);
            false
        }
        BackendAddr::Unix { dir, port } => {
            config.host_path(dir).port(*port);
            true
        }
    };
    let mode = match url.ssl.mode {
        _ if unix => PgSslMode::Disable,
        SslMode::Disable | SslMode::Allow => PgSslMode::Disable,
        SslMode::Prefer => PgSslMode::Prefer,
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => PgSslMode::Require,
    };
    config.ssl_mode(mode);
    if url.ssl.negotiation == SslNegotiation::Direct && !unix {
        config.ssl_negotiation(PgSslNegotiation::Direct);
    }
    config
        .user(&url.user)
        .dbname(&url.dbname)
        .application_name("duet-control")
        .connect_timeout(connect_timeout);
    if let Some(password) = url.password() {
        config.password(password);
    }
    config
}

/// Opens a control connection and registers its backend pid as duet's own.
pub async fn connect(ctx: &ProxyContext) -> Result<Client, ControlError> {
    open(ctx, None).await
}

/// Opens a control connection whose notifications (`LISTEN`) arrive on `notifications`; the
/// channel closes when the connection ends, so its reader learns of the loss.
pub async fn connect_listening(
    ctx: &ProxyContext,
    notifications: mpsc::UnboundedSender<Notification>,
) -> Result<Client, ControlError> {
    open(ctx, Some(notifications)).await
}

/// The TLS hook for connections made with [`control_config`] (for a backend without TLS settings
/// it never connects, and [`control_config`] asks for no TLS then).
pub fn tls_connector(ctx: &ProxyContext) -> MakeRustlsConnect {
    ctx.backend
        .tls
        .as_ref()
        .map_or_else(MakeRustlsConnect::none, BackendTls::make_tls_connect)
}

/// A control connection as tokio-postgres hands it over.
pub type ControlConnection = (
    Client,
    tokio_postgres::Connection<tokio_postgres::Socket, RustlsStream<tokio_postgres::Socket>>,
);

/// Connects to `url` (with its loaded `tls`, if any) with libpq's second chances: `allow` tries
/// TLS when the plain connection was refused, `prefer` tries plain when the TLS one failed (and
/// reports the TLS attempt's error when both fail: it names the real problem). The caller drives
/// the connection. Used by the control connections and by `duet check --database`.
pub async fn connect_url(
    url: &BackendUrl,
    tls: Option<&BackendTls>,
    connect_timeout: Duration,
) -> Result<ControlConnection, tokio_postgres::Error> {
    let connector = || tls.map_or_else(MakeRustlsConnect::none, BackendTls::make_tls_connect);
    let mut config = control_config(url, connect_timeout);
    if tls.is_none() {
        // No TLS settings (a unix socket): nothing to negotiate.
        config.ssl_mode(PgSslMode::Disable);
    }
    let first = config.connect(connector()).await;
    let mode = tls.map(|t| t.mode);
    let retry = match (&first, mode) {
        // A refusal from the server (not a network failure) is what libpq retries.
        (Err(e), Some(SslMode::Allow)) if e.as_db_error().is_some() => PgSslMode::Require,
        (Err(e), Some(SslMode::Prefer)) if e.as_db_error().is_some() || is_tls_error(e) => {
            PgSslMode::Disable
        }
        _ => return first,
    };
    tracing::debug!(mode = ?retry, "connection refused; retrying as the sslmode allows");
    config.ssl_mode(retry);
    match (config.connect(connector()).await, first) {
        (Err(_), Err(tls_attempt)) if mode == Some(SslMode::Prefer) => Err(tls_attempt),
        (second, _) => second,
    }
}

/// A connection error in full: the server's message for a refusal, otherwise tokio-postgres's
/// summary followed by its causes, which it does not print itself (`error performing TLS
/// handshake` alone would hide `certificate verify failed: …`).
pub fn connect_error_text(err: &tokio_postgres::Error) -> String {
    if err.as_db_error().is_some() {
        return DbErrorText(err).to_string();
    }
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Whether tokio-postgres failed in the TLS layer (its error kind is private; the source is ours).
fn is_tls_error(err: &tokio_postgres::Error) -> bool {
    std::error::Error::source(err)
        .is_some_and(|source| source.is::<crate::backend_tls::ControlTlsError>())
}

async fn open(
    ctx: &ProxyContext,
    notifications: Option<mpsc::UnboundedSender<Notification>>,
) -> Result<Client, ControlError> {
    let (client, mut connection) = connect_url(
        &ctx.config.backend,
        ctx.backend.tls.as_ref(),
        ctx.config.connect_timeout,
    )
    .await
    .map_err(|source| ControlError::Connect {
        addr: ctx.backend_addr.to_string(),
        user: ctx.config.backend.user.clone(),
        source,
    })?;
    tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) => {
                    if let Some(tx) = &notifications {
                        let _ = tx.send(n);
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(err)) => {
                    tracing::debug!(%err, "control connection ended");
                    return;
                }
                None => return,
            }
        }
    });
    let row = client
        .query_one(
            "SELECT pg_backend_pid(), current_setting('server_version_num')::int",
            &[],
        )
        .await
        .map_err(|source| ControlError::Setup { source })?;
    ctx.migrations.add_control_pid(row.get(0));
    let version: i32 = row.get(1);
    ctx.migrations
        .set_server_version_num(u32::try_from(version).unwrap_or(0));
    Ok(client)
}

/// A guarded control connection with the `[migration]` DDL timeouts.
pub async fn guarded(ctx: &ProxyContext) -> Result<GuardedConnection, ControlError> {
    let client = connect(ctx).await?;
    let config = GuardConfig {
        lock_timeout: ctx.config.migration.ddl_lock_timeout,
        max_attempts: ctx.config.migration.ddl_attempts,
        ..GuardConfig::default()
    };
    Ok(GuardedConnection::from_client(client, config).await?)
}

/// Runs `steps` guarded, in order, and records `id: from → to` with the last transactional step
/// (or in a transaction of its own when the last step must run outside one, or there is none).
///
/// Steps marked `outside_transaction` run outside a transaction block, retried like the others;
/// before each attempt of a `CREATE INDEX CONCURRENTLY` step, an INVALID index of the same name
/// in `schema` (left by a failed build, here or before a restart) is dropped.
pub async fn run_steps(
    ctx: &ProxyContext,
    guard: &mut GuardedConnection,
    schema: &str,
    what: &str,
    steps: &[Step],
    phase: Option<(i64, Phase, Phase)>,
) -> Result<(), ControlError> {
    let phase_step = phase.map(|(migration_id, from, to)| PhaseStep {
        migration_id,
        from,
        to,
    });
    let mut recorded = false;
    for (i, step) in steps.iter().enumerate() {
        let label = format!("{what} step {} ({})", i + 1, step.why);
        if step.outside_transaction {
            run_outside_transaction(ctx, guard, schema, &label, &step.sql).await?;
        } else {
            let last = i + 1 == steps.len();
            let record = if last { phase_step.as_ref() } else { None };
            guard.run_step(&label, &step.sql, record).await?;
            recorded |= record.is_some();
        }
    }
    if let (Some(step), false) = (phase_step.as_ref(), recorded) {
        guard
            .run_step(
                &format!("recording phase {}", step.to),
                "SELECT 1",
                Some(step),
            )
            .await?;
    }
    Ok(())
}

/// Records a phase change on its own.
pub async fn record(
    guard: &mut GuardedConnection,
    id: i64,
    from: Phase,
    to: Phase,
) -> Result<(), ControlError> {
    let step = PhaseStep {
        migration_id: id,
        from,
        to,
    };
    guard
        .run_step(&format!("recording phase {to}"), "SELECT 1", Some(&step))
        .await?;
    Ok(())
}

/// The index name of a `CREATE [UNIQUE] INDEX CONCURRENTLY [IF NOT EXISTS] name ON …` step, as
/// written (quoted or not); `None` for any other statement.
pub fn concurrent_index_name(sql: &str) -> Option<String> {
    let mut rest = sql.trim_start();
    let word = |rest: &mut &str, expected: &str| -> bool {
        let trimmed = rest.trim_start();
        let ok = trimmed.len() >= expected.len()
            && trimmed[..expected.len()].eq_ignore_ascii_case(expected)
            && trimmed[expected.len()..]
                .chars()
                .next()
                .is_none_or(|c| c.is_whitespace() || c == '"');
        if ok {
            *rest = &trimmed[expected.len()..];
        }
        ok
    };
    if !word(&mut rest, "CREATE") {
        return None;
    }
    word(&mut rest, "UNIQUE");
    if !word(&mut rest, "INDEX") || !word(&mut rest, "CONCURRENTLY") {
        return None;
    }
    if word(&mut rest, "IF") && !(word(&mut rest, "NOT") && word(&mut rest, "EXISTS")) {
        return None;
    }
    let rest = rest.trim_start();
    if let Some(quoted) = rest.strip_prefix('"') {
        // A quoted identifier ends at a quote that is not doubled.
        let mut end = None;
        let bytes = quoted.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'"' {
                if bytes.get(i + 1) == Some(&b'"') {
                    i += 2;
                    continue;
                }
                end = Some(i);
                break;
            }
            i += 1;
        }
        return end.map(|e| format!("\"{}\"", &quoted[..e]));
    }
    let name: String = rest
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '$')
        .collect();
    (!name.is_empty() && !name.eq_ignore_ascii_case("ON")).then_some(name)
}

/// Drops the INVALID index a failed `CREATE INDEX CONCURRENTLY` of this step left behind (an
/// `IF NOT EXISTS` rerun would otherwise keep it, invalid, forever). Only an index with exactly
/// the step's name, in the table's schema, that is not valid, is dropped.
async fn drop_invalid_leftover(
    guard: &GuardedConnection,
    schema: &str,
    sql: &str,
) -> Result<(), tokio_postgres::Error> {
    let Some(name) = concurrent_index_name(sql) else {
        return Ok(());
    };
    let qualified = format!("{}.{name}", duet_shadow::ident::quote_ident(schema));
    let invalid: bool = guard
        .client()
        .query_one(
            "SELECT coalesce((SELECT NOT indisvalid FROM pg_index
                              WHERE indexrelid = to_regclass($1)), false)",
            &[&qualified],
        )
        .await?
        .get(0);
    if invalid {
        tracing::warn!(index = %qualified, "dropping the invalid index a failed concurrent build left");
        guard
            .client()
            .batch_execute(&format!("DROP INDEX CONCURRENTLY IF EXISTS {qualified}"))
            .await?;
    }
    Ok(())
}

async fn run_outside_transaction(
    ctx: &ProxyContext,
    guard: &mut GuardedConnection,
    schema: &str,
    what: &str,
    sql: &str,
) -> Result<(), ControlError> {
    let attempts = ctx.config.migration.ddl_attempts.max(1);
    let mut attempt = 0;
    loop {
        attempt += 1;
        if let Err(e) = drop_invalid_leftover(guard, schema, sql).await {
            if !(is_retryable(&e) && attempt < attempts) {
                return Err(ControlError::InvalidLeftover {
                    step: what.to_owned(),
                    source: e,
                });
            }
            continue;
        }
        match guard.client().batch_execute(sql).await {
            Ok(()) => return Ok(()),
            Err(e) if is_retryable(&e) && attempt < attempts => {
                tokio::time::sleep(backoff_with_jitter(
                    attempt,
                    Duration::from_millis(50),
                    Duration::from_secs(2),
                ))
                .await;
            }
            Err(e) => {
                return Err(ControlError::OutsideTransaction {
                    step: what.to_owned(),
                    attempts: attempt,
                    source: e,
                })
            }
        }
    }
}

/// The phase stored for migration `id` now, read on a connection of its own (`None` when it
/// cannot be read).
pub async fn stored_phase(ctx: &ProxyContext, id: i64) -> Option<duet_shadow::migrate::Phase> {
    let client = connect(ctx).await.ok()?;
    duet_shadow::migrate::state::get_migration(&client, id)
        .await
        .ok()
        .map(|stored| stored.phase)
}

/// Shows `error` as what stopped migration `m` and stores it on its row, so that `status`
/// through every member of the fleet, and after a restart, shows it too.
pub async fn report_error(ctx: &ProxyContext, m: &super::Migration, error: String) {
    if m.error().as_deref() == Some(error.as_str()) {
        // Already shown, and stored by whoever showed it (a refused automatic cutover is tried
        // again every heartbeat): no connection and no fleet-wide announcement for nothing.
        return;
    }
    store_error(ctx, m.id, Some(&error)).await;
    m.set_error(Some(error));
}

/// Stores `error` on the migration row without changing its phase (status after a restart).
pub async fn store_error(ctx: &ProxyContext, id: i64, error: Option<&str>) {
    let Ok(client) = connect(ctx).await else {
        return;
    };
    if let Err(err) = client
        .execute(
            "UPDATE duet.migrations SET error = $2, updated_at = now() WHERE id = $1",
            &[&id, &error],
        )
        .await
    {
        tracing::warn!(migration = id, %err, "cannot store the migration's error");
    }
}

#[cfg(test)]
mod tests {
    use super::concurrent_index_name;

    #[test]
    fn finds_the_name_of_a_concurrent_index_build() {
        assert_eq!(
            concurrent_index_name("CREATE INDEX CONCURRENTLY IF NOT EXISTS t_v ON s.t (v)"),
            Some("t_v".to_owned())
        );
        assert_eq!(
            concurrent_index_name(r#"create unique index concurrently "a ""b""" on t (v)"#),
            Some(r#""a ""b""""#.to_owned())
        );
        assert_eq!(
            concurrent_index_name("CREATE INDEX CONCURRENTLY ON t (v)"),
            None
        );
        assert_eq!(concurrent_index_name("CREATE INDEX t_v ON t (v)"), None);
        assert_eq!(
            concurrent_index_name("ALTER TABLE t VALIDATE CONSTRAINT c"),
            None
        );
    }
}
