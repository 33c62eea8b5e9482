//! Creates pgbench's tables at a given scale, server-side (like `pgbench -i -I dtGvp`).
//!
//! duet-bench must not depend on the `pgbench` binary being installed to run its own driver, and
//! generating rows with `generate_series` inside the server is as fast as pgbench's own
//! server-side mode. The schema is pgbench's, column for column.

use tokio_postgres::Client;

/// The statements that (re)create and fill the pgbench tables at `scale`, in order. Each is run
/// on its own (VACUUM cannot run inside a transaction block).
pub fn init_statements(scale: u32) -> Vec<String> {
    let scale = scale.max(1);
    vec![
        "DROP TABLE IF EXISTS pgbench_accounts, pgbench_branches, pgbench_history, pgbench_tellers"
            .to_string(),
        "CREATE TABLE pgbench_history (tid int, bid int, aid int, delta int, mtime timestamp, \
         filler char(22))"
            .to_string(),
        "CREATE TABLE pgbench_tellers (tid int NOT NULL, bid int, tbalance int, filler char(84)) \
         WITH (fillfactor = 100)"
            .to_string(),
        "CREATE TABLE pgbench_accounts (aid int NOT NULL, bid int, abalance int, filler char(84)) \
         WITH (fillfactor = 100)"
            .to_string(),
        "CREATE TABLE pgbench_branches (bid int NOT NULL, bbalance int, filler char(88)) \
         WITH (fillfactor = 100)"
            .to_string(),
        format!(
            "INSERT INTO pgbench_branches (bid, bbalance) \
             SELECT bid, 0 FROM generate_series(1, {scale}) AS bid"
        ),
        format!(
            "INSERT INTO pgbench_tellers (tid, bid, tbalance) \
             SELECT tid, (tid - 1) / 10 + 1, 0 FROM generate_series(1, {tellers}) AS tid",
            tellers = u64::from(scale) * 10
        ),
        format!(
            "INSERT INTO pgbench_accounts (aid, bid, abalance, filler) \
             SELECT aid, (aid - 1) / 100000 + 1, 0, '' FROM generate_series(1, {accounts}) AS aid",
            accounts = u64::from(scale) * 100_000
        ),
        "VACUUM ANALYZE pgbench_branches, pgbench_tellers, pgbench_accounts, pgbench_history"
            .to_string(),
        "ALTER TABLE pgbench_branches ADD PRIMARY KEY (bid)".to_string(),
        "ALTER TABLE pgbench_tellers ADD PRIMARY KEY (tid)".to_string(),
        "ALTER TABLE pgbench_accounts ADD PRIMARY KEY (aid)".to_string(),
    ]
}

/// Creates the pgbench tables at `scale` over `client` (simple protocol, one statement at a time).
pub async fn init(client: &Client, scale: u32) -> Result<(), tokio_postgres::Error> {
    for statement in init_statements(scale) {
        client.batch_execute(&statement).await?;
    }
    Ok(())
}

/// The scale of existing pgbench tables (rows in pgbench_branches), as pgbench determines it.
/// `Ok(None)` when the tables do not exist.
pub async fn detect_scale(client: &Client) -> Result<Option<u32>, tokio_postgres::Error> {
    let exists = client
        .query_one("SELECT to_regclass('pgbench_branches') IS NOT NULL", &[])
        .await?
        .get::<_, bool>(0);
    if !exists {
        return Ok(None);
    }
    let count: i64 = client
        .query_one("SELECT count(*) FROM pgbench_branches", &[])
        .await?
        .get(0);
    Ok(u32::try_from(count).ok().filter(|&n| n > 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_scale_like_pgbench() {
        let statements = init_statements(3).join("\n");
        assert!(statements.contains("generate_series(1, 3) AS bid"));
        assert!(statements.contains("generate_series(1, 30) AS tid"));
        assert!(statements.contains("generate_series(1, 300000) AS aid"));
    }

    #[test]
    fn vacuum_runs_before_primary_keys_and_alone() {
        let statements = init_statements(1);
        let vacuum = statements.iter().position(|s| s.starts_with("VACUUM"));
        let first_pk = statements.iter().position(|s| s.contains("PRIMARY KEY"));
        assert!(vacuum < first_pk);
        assert!(statements.iter().all(|s| !s.contains(';')));
    }
}
