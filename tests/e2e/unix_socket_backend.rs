//! A backend reached over its unix socket: the `--backend` URL names a socket directory, either
//! percent-encoded in the host part or as `?host=/path`. Client sessions then reach PostgreSQL
//! over the socket (`inet_server_addr()` is NULL there).

use duet_harness::cluster::ClusterOptions;

use crate::support::pg_client::connect;
use crate::support::{throwaway_cluster_or_skip, DuetProcess};

fn percent_encode_path(path: &str) -> String {
    path.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (byte as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_over_a_unix_socket() {
    let test = "backend_over_a_unix_socket";
    let Some(cluster) = throwaway_cluster_or_skip(test, ClusterOptions::default()) else {
        return;
    };
    let socket_dir = cluster
        .socket_dir()
        .to_str()
        .expect("utf-8 socket dir")
        .to_string();
    let port = cluster.port();
    for url in [
        format!(
            "postgres://postgres@{}:{port}/postgres",
            percent_encode_path(&socket_dir)
        ),
        format!("postgres://postgres@:{port}/postgres?host={socket_dir}"),
    ] {
        let duet = DuetProcess::start(&url, &[]);
        let session = connect(&duet.config("postgres", "postgres")).await;
        let row = session
            .client
            .query_one(
                "SELECT inet_server_addr() IS NULL, current_setting('port')",
                &[],
            )
            .await
            .expect("query through duet to a unix-socket backend");
        assert!(
            row.get::<_, bool>(0),
            "{url}: the session did not go over the unix socket"
        );
        assert_eq!(
            row.get::<_, String>(1),
            port.to_string(),
            "{url}: wrong server"
        );
    }
}
