//! pgbench's built-in workloads, as duet-bench runs them.
//!
//! The statements and the random choices are pgbench's own (`select-only` = `-S`, `read-write` =
//! the default TPC-B-like script), so numbers from the built-in driver and from the real `pgbench`
//! binary describe the same work. The protocol decides how they travel: `simple` sends each
//! statement as one Query message with the values written into the text; `prepared` prepares each
//! statement once per connection and then sends Bind/Execute/Sync with binary parameters, like
//! `pgbench -M prepared`.

use serde::Serialize;

/// Which script each client runs in a loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Workload {
    /// `SELECT abalance FROM pgbench_accounts WHERE aid = :aid` (pgbench -S).
    SelectOnly,
    /// pgbench's TPC-B-like transaction: BEGIN; 3 UPDATEs, 1 SELECT, 1 INSERT; END.
    ReadWrite,
}

impl Workload {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Workload::SelectOnly => "select-only",
            Workload::ReadWrite => "read-write",
        }
    }
}

/// How statements are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// Simple-query protocol, literal values (pgbench -M simple).
    Simple,
    /// Extended protocol with statements prepared once per connection (pgbench -M prepared).
    Prepared,
}

impl Protocol {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Simple => "simple",
            Protocol::Prepared => "prepared",
        }
    }
}

/// Rows per scale unit, as in pgbench.
pub const ACCOUNTS_PER_BRANCH: i64 = 100_000;
/// Tellers per scale unit, as in pgbench.
pub const TELLERS_PER_BRANCH: i64 = 10;

/// The statements of the TPC-B-like script, in order, with `$n` placeholders:
/// $1 = aid, $2 = bid, $3 = tid, $4 = delta (each statement numbers its own parameters).
pub mod sql {
    /// The select-only statement (and the SELECT inside the TPC-B-like transaction).
    pub const SELECT_BALANCE: &str = "SELECT abalance FROM pgbench_accounts WHERE aid = $1";
    /// Opens the transaction.
    pub const BEGIN: &str = "BEGIN";
    /// $1 = delta, $2 = aid.
    pub const UPDATE_ACCOUNT: &str =
        "UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2";
    /// $1 = delta, $2 = tid.
    pub const UPDATE_TELLER: &str =
        "UPDATE pgbench_tellers SET tbalance = tbalance + $1 WHERE tid = $2";
    /// $1 = delta, $2 = bid.
    pub const UPDATE_BRANCH: &str =
        "UPDATE pgbench_branches SET bbalance = bbalance + $1 WHERE bid = $2";
    /// $1 = tid, $2 = bid, $3 = aid, $4 = delta.
    pub const INSERT_HISTORY: &str = "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) \
         VALUES ($1, $2, $3, $4, CURRENT_TIMESTAMP)";
    /// Commits the transaction.
    pub const END: &str = "END";
}

/// The random values of one transaction (pgbench's `\set` lines).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxValues {
    /// Account, uniform in 1..=100000*scale.
    pub aid: i32,
    /// Branch, uniform in 1..=scale.
    pub bid: i32,
    /// Teller, uniform in 1..=10*scale.
    pub tid: i32,
    /// Amount, uniform in -5000..=5000.
    pub delta: i32,
}

impl TxValues {
    /// Draws the values for one transaction at `scale`.
    pub fn draw(rng: &mut SplitMix64, scale: u32) -> TxValues {
        let scale = i64::from(scale.max(1));
        TxValues {
            aid: rng.uniform(1, ACCOUNTS_PER_BRANCH * scale),
            bid: rng.uniform(1, scale),
            tid: rng.uniform(1, TELLERS_PER_BRANCH * scale),
            delta: rng.uniform(-5000, 5000),
        }
    }

    /// The simple-protocol statements of the TPC-B-like transaction, values written in.
    pub fn read_write_literal(&self) -> [String; 7] {
        let TxValues {
            aid,
            bid,
            tid,
            delta,
        } = *self;
        [
            "BEGIN".to_string(),
            format!("UPDATE pgbench_accounts SET abalance = abalance + {delta} WHERE aid = {aid}"),
            select_only_literal(aid),
            format!("UPDATE pgbench_tellers SET tbalance = tbalance + {delta} WHERE tid = {tid}"),
            format!("UPDATE pgbench_branches SET bbalance = bbalance + {delta} WHERE bid = {bid}"),
            format!(
                "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) \
                 VALUES ({tid}, {bid}, {aid}, {delta}, CURRENT_TIMESTAMP)"
            ),
            "END".to_string(),
        ]
    }
}

/// The simple-protocol select-only statement.
pub fn select_only_literal(aid: i32) -> String {
    format!("SELECT abalance FROM pgbench_accounts WHERE aid = {aid}")
}

/// A small, fast, seedable generator (SplitMix64): each client gets its own stream, no locking,
/// and no dependency for what only needs to be uniform, not secure.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64 { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `low..=high` (`low <= high`), saturated to the i32 range.
    pub fn uniform(&mut self, low: i64, high: i64) -> i32 {
        let span = (high - low + 1).max(1) as u64;
        let value = low + (self.next_u64() % span) as i64;
        value.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_stay_in_pgbench_ranges() {
        let mut rng = SplitMix64::new(7);
        for _ in 0..10_000 {
            let v = TxValues::draw(&mut rng, 3);
            assert!((1..=300_000).contains(&v.aid));
            assert!((1..=3).contains(&v.bid));
            assert!((1..=30).contains(&v.tid));
            assert!((-5000..=5000).contains(&v.delta));
        }
    }

    #[test]
    fn uniform_reaches_both_ends() {
        let mut rng = SplitMix64::new(1);
        let draws: Vec<i32> = (0..1000).map(|_| rng.uniform(1, 3)).collect();
        assert!(draws.contains(&1) && draws.contains(&3));
    }

    #[test]
    fn literal_transaction_matches_pgbench_script() {
        let v = TxValues {
            aid: 42,
            bid: 1,
            tid: 7,
            delta: -13,
        };
        let script = v.read_write_literal();
        assert_eq!(script[0], "BEGIN");
        assert_eq!(
            script[1],
            "UPDATE pgbench_accounts SET abalance = abalance + -13 WHERE aid = 42"
        );
        assert_eq!(
            script[2],
            "SELECT abalance FROM pgbench_accounts WHERE aid = 42"
        );
        assert!(script[5].contains("VALUES (7, 1, 42, -13, CURRENT_TIMESTAMP)"));
        assert_eq!(script[6], "END");
    }
}
