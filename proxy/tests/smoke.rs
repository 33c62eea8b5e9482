//! Quick smoke tests of the `duet` binary against the real PostgreSQL (the broad end-to-end suite
//! lives in the top-level tests/ folder). Each test starts its own proxy on a free port.
//!
//! The server comes from `DUET_TEST_DATABASE_URL` (default postgres://postgres@127.0.0.1:5432/postgres,
//! through `duet_testkit`). Without a reachable server the tests say so and pass, unless
//! `DUET_REQUIRE_DATABASE=1`.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
mod support;

use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use duet_testkit::{wire, Backend};
use support::backend_or_skip;

/// A running `duet proxy` on a free port, killed when dropped.
struct Proxy {
    child: Child,
    port: u16,
    socket: PathBuf,
    /// The test server, whose user and maintenance database clients log in to through duet.
    backend: Backend,
}

impl Proxy {
    /// duet in front of the test server's maintenance database.
    fn start(backend: &Backend) -> Proxy {
        Self::start_with(backend, &[])
    }

    /// [`Proxy::start`] with `extra` arguments.
    fn start_with(backend: &Backend, extra: &[&str]) -> Proxy {
        Self::start_in_front_of(backend, &backend.url(&backend.maintenance_db), extra)
    }

    /// duet with `backend_url` as its backend (perhaps not the test server at all); clients
    /// still log in as the test server's user.
    fn start_in_front_of(backend: &Backend, backend_url: &str, extra: &[&str]) -> Proxy {
        let socket = std::env::temp_dir().join(format!(
            "duet-smoke-{}-{}.sock",
            std::process::id(),
            rand_suffix()
        ));
        let mut child = Command::new(env!("CARGO_BIN_EXE_duet"))
            .args([
                "proxy",
                "--listen",
                "127.0.0.1:0",
                "--backend",
                backend_url,
                "--admin-socket",
            ])
            .arg(&socket)
            .args(extra)
            .env("DUET_LOG", "info")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("start duet");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line.split("listening on ").nth(1) {
                    let _ = tx.send(addr.trim().to_owned());
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("duet logs `listening on <addr>`");
        let port = addr.rsplit(':').next().unwrap().parse().unwrap();
        // The admin socket is bound before the listener logs; wait until it answers.
        Proxy {
            child,
            port,
            socket,
            backend: backend.clone(),
        }
    }

    fn admin(&self, request: &str) -> serde_json::Value {
        let mut stream = UnixStream::connect(&self.socket).expect("admin socket");
        stream.write_all(request.as_bytes()).unwrap();
        stream.write_all(b"\n").unwrap();
        let mut line = String::new();
        BufReader::new(&stream).read_line(&mut line).unwrap();
        serde_json::from_str(&line).expect("a JSON reply")
    }

    /// How a client reaches the maintenance database through this duet.
    fn config(&self) -> tokio_postgres::Config {
        self.backend
            .config_at("127.0.0.1", self.port, &self.backend.maintenance_db)
    }

    async fn connect(&self) -> tokio_postgres::Client {
        let (client, connection) = self
            .config()
            .connect(tokio_postgres::NoTls)
            .await
            .expect("connect through duet");
        tokio::spawn(connection);
        client
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.socket);
    }
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0)
}

#[tokio::test]
async fn simple_and_extended_queries_pass_through() {
    let Some(backend) = backend_or_skip() else {
        return;
    };
    let proxy = Proxy::start(&backend);
    let client = proxy.connect().await;
    let messages = client.simple_query("select 1; select 2").await.unwrap();
    let rows = messages
        .iter()
        .filter(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(_)))
        .count();
    assert_eq!(rows, 2);
    let row = client
        .query_one("select $1::int + 1", &[&41i32])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 42);
    let err = client.query_one("select 1/0", &[]).await.unwrap_err();
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::DIVISION_BY_ZERO)
    );
    let row = client
        .query_one("select 'still usable'", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, &str>(0), "still usable");

    let status = proxy.admin(r#"{"command":"status"}"#);
    assert_eq!(status["ok"], true);
    let result = &status["result"];
    assert_eq!(result["clients"]["current"], 1);
    assert!(result["statements"].as_u64().unwrap() >= 4);
    assert_eq!(result["sessions"][0]["state"], "idle");
    assert!(result["sessions"][0]["backend_pid"].as_i64().unwrap() > 0);
}

#[tokio::test]
async fn pause_holds_new_transactions_until_resume() {
    let Some(backend) = backend_or_skip() else {
        return;
    };
    let proxy = Proxy::start(&backend);
    let client = proxy.connect().await;
    client.simple_query("select 1").await.unwrap();

    let paused = proxy.admin(r#"{"command":"pause","timeout_ms":5000}"#);
    assert_eq!(paused["result"]["paused"], true, "{paused}");

    let held = tokio::spawn(async move { client.simple_query("select 2").await.map(|_| ()) });
    // The held query must still be waiting after the admin round trips below.
    let status = proxy.admin(r#"{"command":"status"}"#);
    assert_eq!(status["result"]["paused"], true);
    assert!(!held.is_finished(), "a query ran while paused");

    let resumed = proxy.admin(r#"{"command":"resume"}"#);
    assert_eq!(resumed["result"]["paused"], false);
    held.await
        .unwrap()
        .expect("the held query runs after resume");
}

#[tokio::test]
async fn pause_times_out_on_an_open_transaction_and_names_it() {
    let Some(backend) = backend_or_skip() else {
        return;
    };
    let proxy = Proxy::start(&backend);
    let client = proxy.connect().await;
    client.simple_query("begin; select 1").await.unwrap();

    let reply = proxy.admin(r#"{"command":"pause","timeout_ms":200}"#);
    let result = &reply["result"];
    assert_eq!(result["paused"], false, "{reply}");
    assert_eq!(result["reason"], "timeout");
    assert_eq!(
        result["blocking_sessions"][0]["state"],
        "idle in transaction"
    );

    // The pause was released: the transaction can go on and finish.
    client.simple_query("commit").await.unwrap();
}

#[tokio::test]
async fn malformed_admin_input_gets_an_error_reply() {
    let Some(backend) = backend_or_skip() else {
        return;
    };
    let proxy = Proxy::start(&backend);
    let reply = proxy.admin("this is not json");
    assert_eq!(reply["ok"], false);
    assert!(reply["error"].as_str().unwrap().contains("status"));
    let reply = proxy.admin(r#"{"command":"status"}"#);
    assert_eq!(reply["ok"], true);
}

#[tokio::test]
async fn shutdown_closes_sessions_with_57p01_and_exits_zero() {
    let Some(backend) = backend_or_skip() else {
        return;
    };
    let mut proxy = Proxy::start(&backend);
    let client = proxy.connect().await;
    client.simple_query("select 1").await.unwrap();
    let reply = proxy.admin(r#"{"command":"shutdown","timeout_ms":100}"#);
    assert_eq!(reply["result"]["shutting_down"], true);
    assert_eq!(reply["result"]["sessions"], 1);
    let status = proxy.child.wait().expect("duet exits");
    assert!(status.success(), "duet exited with {status}");
    let err = client.simple_query("select 1").await.unwrap_err();
    let code = err.code().cloned();
    assert!(
        code == Some(tokio_postgres::error::SqlState::ADMIN_SHUTDOWN) || err.is_closed(),
        "unexpected error {err}"
    );
}

#[tokio::test]
async fn unreachable_backend_is_reported_as_08006() {
    let Some(backend) = backend_or_skip() else {
        return;
    };
    // Port 1 on loopback: nothing listens there.
    let proxy = Proxy::start_in_front_of(&backend, "postgres://postgres@127.0.0.1:1/postgres", &[]);
    let err = proxy
        .config()
        .connect(tokio_postgres::NoTls)
        .await
        .err()
        .expect("the connection must fail");
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::CONNECTION_FAILURE),
        "{err}"
    );
    let message = err.as_db_error().map(|e| e.message()).unwrap_or_default();
    assert!(message.contains("127.0.0.1:1"), "{message}");
}

#[tokio::test]
async fn cancel_requests_reach_the_backend_with_its_real_key() {
    let Some(backend) = backend_or_skip() else {
        return;
    };
    let proxy = Proxy::start(&backend);
    let client = proxy.connect().await;
    let token = client.cancel_token();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let canceller = tokio::spawn({
        let done = done.clone();
        async move {
            // A cancel that arrives before the query starts is a no-op: repeat until it lands.
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                token.cancel_query(tokio_postgres::NoTls).await?;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Ok::<_, tokio_postgres::Error>(())
        }
    });
    let err = client
        .simple_query("select pg_sleep(30)")
        .await
        .unwrap_err();
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::QUERY_CANCELED),
        "{err}"
    );
    canceller.await.unwrap().unwrap();
    client
        .simple_query("select 1")
        .await
        .expect("the session goes on");
}

#[tokio::test]
async fn a_lost_backend_is_reported_and_others_keep_working() {
    let Some(backend) = backend_or_skip() else {
        return;
    };
    let proxy = Proxy::start(&backend);
    let victim = proxy.connect().await;
    let pid: i32 = victim
        .query_one("select pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    let other = proxy.connect().await;
    other
        .execute("select pg_terminate_backend($1)", &[&pid])
        .await
        .unwrap();
    assert!(victim.simple_query("select 1").await.is_err());
    other
        .simple_query("select 1")
        .await
        .expect("other sessions are unaffected");
    proxy
        .connect()
        .await
        .simple_query("select 1")
        .await
        .expect("new sessions work");
}

#[tokio::test]
async fn a_malformed_message_gets_fatal_08p01_and_only_that_client_is_closed() {
    use std::io::Read;
    let Some(backend) = backend_or_skip() else {
        return;
    };
    let proxy = Proxy::start(&backend);
    let bystander = proxy.connect().await;

    let mut raw = std::net::TcpStream::connect(("127.0.0.1", proxy.port)).unwrap();
    let startup = wire::startup_message(&[
        ("user", &backend.user),
        ("database", &backend.maintenance_db),
    ]);
    raw.write_all(&startup).unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !seen.ends_with(b"Z\0\0\0\x05I") {
        let n = raw.read(&mut buf).unwrap();
        assert!(n > 0, "closed during startup");
        seen.extend_from_slice(&buf[..n]);
    }
    // A message whose length field is smaller than itself.
    raw.write_all(b"Q\0\0\0\x02").unwrap();
    let mut reply = Vec::new();
    raw.read_to_end(&mut reply).unwrap();
    assert_eq!(reply.first(), Some(&b'E'));
    let text = String::from_utf8_lossy(&reply);
    assert!(text.contains("FATAL") && text.contains("08P01"), "{text}");

    bystander
        .simple_query("select 1")
        .await
        .expect("the other client is unaffected");
}

#[tokio::test]
async fn tls_is_offered_when_a_certificate_is_configured() {
    let Some(backend) = backend_or_skip() else {
        return;
    };
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    let cert = format!("{fixtures}/test-cert.pem");
    let key = format!("{fixtures}/test-key.pem");
    let proxy = Proxy::start_with(&backend, &["--tls-cert", &cert, "--tls-key", &key]);
    let conninfo = |sslmode: &str| {
        let mut psql = Command::new("psql");
        if let Some(password) = &backend.password {
            psql.env("PGPASSWORD", password);
        }
        psql.arg(format!(
            "host=127.0.0.1 port={} user={} dbname={} sslmode={sslmode}",
            proxy.port, backend.user, backend.maintenance_db
        ))
        .args(["-X", "-c", "\\conninfo"])
        .output()
    };
    let output = match conninfo("require") {
        Ok(output) => output,
        Err(err) => {
            assert!(
                !support::database_required(),
                "DUET_REQUIRE_DATABASE=1 but psql is not runnable: {err}"
            );
            eprintln!("SKIPPED: psql not runnable ({err}); the TLS smoke test needs it");
            return;
        }
    };
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(text.contains("SSL connection"), "{text}");
    // PostgreSQL 17+ clients can skip SSLRequest and start TLS directly.
    let direct = conninfo("require sslnegotiation=direct").unwrap();
    let text = String::from_utf8_lossy(&direct.stdout);
    if direct.status.success() {
        assert!(text.contains("SSL connection"), "{text}");
    } else {
        eprintln!("note: this psql predates sslnegotiation=direct; direct TLS not exercised");
    }
    let plain = conninfo("disable").unwrap();
    let text = String::from_utf8_lossy(&plain.stdout);
    assert!(
        plain.status.success() && !text.contains("SSL connection"),
        "{text}"
    );
}
