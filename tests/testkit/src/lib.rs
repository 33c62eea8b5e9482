//! What every duet test suite shares, so the policy and the plumbing are written once:
//!
//! - [`environment`]: which PostgreSQL the suites talk to (`DUET_TEST_DATABASE_URL`) and the
//!   skip-or-fail policy — without a server a test skips loudly, with `DUET_REQUIRE_DATABASE=1`
//!   (CI) it fails;
//! - [`database`]: a fresh database per test, dropped when the test ends (also on a panic);
//! - [`wire`]: raw protocol bytes for tests that send what no client library would;
//! - [`raw_client`]: a minimal blocking simple-query client that shows what libraries hide (the
//!   CommandComplete tag, every statement's answer);
//! - [`temp_dir`]: a temporary directory kept when the test failed;
//! - [`cluster`]: a started throwaway cluster (`duet_harness::cluster`) under the same policy, for
//!   the tests that need a server they fully control.
//!
//! It is a dev-dependency of every crate and depends only on the harness (for its clusters; the
//! harness does not depend on the kit): the duet process stays with the suites that start it.

pub mod cluster;
pub mod database;
pub mod environment;
pub mod raw_client;
pub mod temp_dir;
pub mod wire;

pub use cluster::{server_binaries_or_skip, throwaway_cluster_or_skip};
pub use database::TestDatabase;
pub use environment::{backend, backend_or_skip, database_required, skip_or_fail, Backend};
pub use raw_client::{Answer, RawClient};
pub use temp_dir::TempDir;
