//! Configuration through a file: `config/duet.toml` in the working directory is read when no
//! `--config` is given, `--config PATH` names another file, and flags win over the file.
//! (Field names as in the repository's documented `config/duet.toml`.)

use std::net::SocketAddr;
use std::time::Duration;

use crate::support::pg_client::connect;
use crate::support::tools::{run, Target};
use crate::support::{backend_or_skip, free_port, DuetProcess, TempDir, TestDatabase};

fn address() -> SocketAddr {
    format!("127.0.0.1:{}", free_port())
        .parse()
        .expect("a socket address")
}

fn write_config(
    path: &std::path::Path,
    listen: SocketAddr,
    backend: &str,
    socket: &std::path::Path,
    metrics: SocketAddr,
) {
    let text = format!(
        "[proxy]\nlisten = \"{listen}\"\nbackend = \"{backend}\"\nshutdown_timeout = \"1s\"\n\n\
         [admin]\nsocket = \"{}\"\n\n[metrics]\nlisten = \"{metrics}\"\n",
        socket.display()
    );
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("creating the config directory");
    }
    std::fs::write(path, text).expect("writing the config file");
}

/// `GET /metrics` over plain HTTP/1.0; returns the whole response.
fn http_get_metrics(addr: SocketAddr) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr)
        .unwrap_or_else(|err| panic!("connecting to metrics at {addr}: {err}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .expect("sending the HTTP request");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .expect("reading the metrics response");
    response
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_file_in_working_directory_and_flags_override() {
    let Some(backend) = backend_or_skip("config_file_in_working_directory_and_flags_override")
    else {
        return;
    };
    let db = TestDatabase::create(&backend, "config_file");

    // config/duet.toml in the working directory, no flags at all.
    let dir = TempDir::new("config-default");
    let (listen, metrics) = (address(), address());
    let socket = dir.join("from-file.sock");
    write_config(
        &dir.join("config/duet.toml"),
        listen,
        &backend.url(db.name()),
        &socket,
        metrics,
    );
    let duet = DuetProcess::start_in(dir, vec!["proxy".into()], listen, socket.clone());
    let config = duet.config_as(&backend, db.name());
    let session = connect(&config).await;
    session
        .client
        .simple_query("SELECT 1")
        .await
        .expect("query through the file-configured duet");
    assert_eq!(duet.status()["listen"], listen.to_string());
    assert_eq!(duet.status()["backend"], backend.address());
    let response = http_get_metrics(metrics);
    assert!(
        response.starts_with("HTTP/1.1 200") || response.starts_with("HTTP/1.0 200"),
        "{response}"
    );
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    assert!(
        body.lines()
            .any(|line| !line.starts_with('#') && !line.trim().is_empty()),
        "empty metrics:\n{response}"
    );
    drop(session);
    drop(duet);

    // --config PATH elsewhere, with --listen and --admin-socket flags overriding the file.
    let dir = TempDir::new("config-flag");
    let (file_listen, flag_listen, metrics) = (address(), address(), address());
    let file_socket = dir.join("from-file.sock");
    let flag_socket = dir.join("from-flag.sock");
    let config_path = dir.join("elsewhere/duet.toml");
    write_config(
        &config_path,
        file_listen,
        &backend.url(db.name()),
        &file_socket,
        metrics,
    );
    let args = vec![
        "proxy".to_string(),
        "--config".into(),
        config_path.display().to_string(),
        "--listen".into(),
        flag_listen.to_string(),
        "--admin-socket".into(),
        flag_socket.display().to_string(),
    ];
    let duet = DuetProcess::start_in(dir, args, flag_listen, flag_socket.clone());
    assert!(
        !file_socket.exists(),
        "the file's admin socket was used despite --admin-socket"
    );
    assert!(
        std::net::TcpStream::connect(file_listen).is_err(),
        "the file's listen address was used despite --listen"
    );
    let mut target = Target::tcp("127.0.0.1", flag_listen.port(), &backend.user, db.name());
    if let Some(password) = &backend.password {
        target = target.with_password(password);
    }
    crate::support::tools::psql(&target, &["-c", "SELECT 1"], None).assert_success();

    // A broken file: exit 2 naming the field.
    let broken = TempDir::new("config-broken");
    let path = broken.join("duet.toml");
    std::fs::write(&path, "[proxy]\nlisten = 42\n").expect("writing the broken config");
    let mut command = std::process::Command::new(crate::support::duet_process::DUET_BIN);
    command
        .arg("proxy")
        .arg("--config")
        .arg(&path)
        .current_dir(broken.path());
    let out = run(command, None, Duration::from_secs(30));
    assert_eq!(
        out.code(),
        Some(2),
        "a broken config file must exit 2:\n{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("listen"),
        "the message must name the field:\n{}",
        out.stderr
    );
    drop(duet);
}
