//! The throwaway cluster against the real server binaries: it starts, serves SQL, enforces the
//! pg_hba.conf lines it was given, and leaves nothing behind when stopped.

mod support;

use duet_harness::cluster::{Cluster, ClusterOptions};
use support::binaries_available;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

async fn connect(url: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

#[test]
fn starts_serves_sql_and_leaves_nothing_behind() {
    if !binaries_available() {
        return;
    }
    let cluster = Cluster::start(ClusterOptions {
        max_connections: 37,
        settings: vec![("application_name".into(), "'cluster-test'".into())],
        ..ClusterOptions::default()
    })
    .expect("cluster starts");
    assert_eq!(cluster.host(), "127.0.0.1");
    let url = cluster.url("postgres", None, "postgres");
    runtime().block_on(async {
        let client = connect(&url).await.expect("connect as postgres");
        let row = client
            .query_one(
                "SELECT current_setting('max_connections'), current_user",
                &[],
            )
            .await
            .expect("query");
        assert_eq!(row.get::<_, String>(0), "37");
        assert_eq!(row.get::<_, String>(1), "postgres");
    });
    let data_dir = cluster.data_dir().to_path_buf();
    let pid = cluster.pid().expect("running postmaster");
    assert!(data_dir.join("PG_VERSION").exists());
    cluster.stop();
    assert!(!data_dir.exists(), "data directory removed");
    assert!(
        !data_dir.parent().expect("scratch dir").exists(),
        "temp directory removed"
    );
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "postmaster {pid} is gone"
    );
}

#[test]
fn hba_lines_come_first_and_are_enforced() {
    if !binaries_available() {
        return;
    }
    let cluster = Cluster::start(ClusterOptions {
        hba: vec!["host all app 127.0.0.1/32 scram-sha-256".into()],
        ..ClusterOptions::default()
    })
    .expect("cluster starts");
    let admin_url = cluster.url("postgres", None, "postgres");
    let good = cluster.url("app", Some("s3cret:@/"), "postgres");
    let wrong = cluster.url("app", Some("nope"), "postgres");
    let none = cluster.url("app", None, "postgres");
    runtime().block_on(async {
        let admin = connect(&admin_url).await.expect("superuser trusted");
        admin
            .batch_execute("CREATE ROLE app LOGIN PASSWORD 's3cret:@/'")
            .await
            .expect("create role");
        let app = connect(&good).await.expect("right password accepted");
        let user: String = app
            .query_one("SELECT current_user::text", &[])
            .await
            .expect("query")
            .get(0);
        assert_eq!(user, "app");
        let err = connect(&wrong).await.expect_err("wrong password refused");
        let code = err.as_db_error().map(|e| e.code().code().to_string());
        assert_eq!(code.as_deref(), Some("28P01"), "{err}");
        assert!(connect(&none).await.is_err(), "missing password refused");
    });
}

#[test]
fn two_clusters_run_side_by_side() {
    if !binaries_available() {
        return;
    }
    let a = Cluster::start(ClusterOptions::default()).expect("first cluster");
    let b = Cluster::start(ClusterOptions::default()).expect("second cluster");
    assert_ne!(a.port(), b.port());
    assert_ne!(a.data_dir(), b.data_dir());
}

#[test]
fn missing_binaries_are_reported_with_the_paths_tried_and_the_fix() {
    let empty = duet_harness::scratch::ScratchDir::create("no-binaries").expect("scratch dir");
    let err = Cluster::start(ClusterOptions {
        bin_dir: Some(empty.path().to_path_buf()),
        ..ClusterOptions::default()
    })
    .expect_err("no binaries there");
    let message = err.to_string();
    assert!(
        message.contains(&empty.path().display().to_string()),
        "{message}"
    );
    assert!(message.contains("apt-get install postgresql"), "{message}");
}
