//! End-to-end tests: the real `duet` binary in front of the real PostgreSQL, driven by real
//! clients. See tests/README.md for how to run them and what each module covers.
//!
//! One test binary with modules (rather than one per file) keeps the link time of the suite low.

mod support;

mod admin_socket;
mod auth_and_tls;
mod backend_tls;
mod carried_objects;
mod config_file;
mod connection_end;
mod demo;
mod fleet;
mod identity_columns;
mod many_clients;
mod migration;
mod migration_faults;
mod migration_load;
mod migration_shape;
mod migration_throttle;
mod pause_resume;
mod pgbench_load;
mod psql_client;
mod psycopg_client;
mod referenced_keys;
mod robustness;
mod safety_net;
mod status_page;
mod tokio_postgres_client;
mod transaction_pooling;
mod unix_socket_backend;
mod unix_socket_clients;
mod versions;
mod write_sweep;
