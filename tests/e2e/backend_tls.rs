//! TLS between duet and the backend, against a server that accepts nothing else: a throwaway
//! cluster with `ssl = on`, a server certificate for `localhost` signed by a test CA (made with the
//! openssl CLI), and a pg_hba.conf whose only TCP lines are `hostssl` (scram-sha-256 for everyone,
//! `cert` for one role); `local` trust is kept for the test's own setup over the unix socket.
//!
//! Covered: clients (tokio-postgres, psql) through duet with `sslmode=verify-full` reach the
//! server over TLS (`pg_stat_ssl`) with their SCRAM login relayed, a cancel request travels over
//! TLS too; an online migration runs there as the table's owner (no superuser) with TLS control
//! connections; every sslmode, `sslrootcert=system`, a client certificate and direct negotiation
//! (through a second duet, since the installed server may be older than 17); and the failures: a
//! wrong CA, a wrong host name, `sslmode=disable` (the server's own FATAL is relayed), a server
//! without TLS under `sslmode=require`, and a backend that is down at start-up.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use duet_harness::cluster::{Cluster, ClusterOptions};
use serde_json::json;
use tokio_postgres::Config;

use crate::support::migration::{column_type, migrate_sql, request, wait_phase};
use crate::support::pg_client::{connect, try_connect, Session};
use crate::support::tools::{command, psql, run};
use crate::support::{throwaway_cluster_or_skip, wait_for, wait_for_async, DuetProcess, TempDir};

/// The table owner duet's URL names (no superuser), and its password (SCRAM).
const OWNER: &str = "app_owner";
const OWNER_PASSWORD: &str = "owner secret";
/// A role that logs in with a client certificate (`hostssl … cert`).
const CERT_USER: &str = "cert_user";
/// The database the owner owns.
const DB: &str = "app";

/// The test PKI: a CA, a server certificate for `localhost` (DNS name only, so `127.0.0.1` is a
/// wrong host name under verify-full), a client certificate for [`CERT_USER`], and an unrelated CA.
struct Pki {
    /// Holds the files (removed when the test is over).
    _dir: TempDir,
    ca: PathBuf,
    wrong_ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let mut openssl = command("openssl");
    openssl.current_dir(dir).args(args);
    run(openssl, None, Duration::from_secs(60)).assert_success();
}

const EC_KEY: [&str; 4] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];

fn self_signed_ca(dir: &Path, name: &str) -> PathBuf {
    let mut args = vec!["req", "-x509"];
    args.extend(EC_KEY);
    let subject = format!("/CN={name}");
    let key = format!("{name}.key");
    let cert = format!("{name}.pem");
    args.extend([
        "-nodes", "-days", "2", "-subj", &subject, "-keyout", &key, "-out", &cert,
    ]);
    openssl(dir, &args);
    dir.join(cert)
}

/// A certificate for `cn` with `extensions`, signed by the CA `ca` (its key beside it).
fn signed(dir: &Path, ca: &str, name: &str, cn: &str, extensions: &str) -> (PathBuf, PathBuf) {
    let (key, csr, cert, ext) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.crt"),
        format!("{name}.ext"),
    );
    std::fs::write(dir.join(&ext), extensions).expect("writing the extensions file");
    let subject = format!("/CN={cn}");
    let mut args = vec!["req", "-new"];
    args.extend(EC_KEY);
    args.extend(["-nodes", "-subj", &subject, "-keyout", &key, "-out", &csr]);
    openssl(dir, &args);
    let (ca_cert, ca_key) = (format!("{ca}.pem"), format!("{ca}.key"));
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_cert,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            &cert,
            "-extfile",
            &ext,
        ],
    );
    (dir.join(cert), dir.join(key))
}

fn make_pki() -> Pki {
    let dir = TempDir::new("backend-tls-pki");
    // The server runs as another OS user when the tests run as root: it must reach its files.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("opening the PKI directory");
    let ca = self_signed_ca(dir.path(), "test-ca");
    let wrong_ca = self_signed_ca(dir.path(), "other-ca");
    let (server_cert, server_key) = signed(
        dir.path(),
        "test-ca",
        "server",
        "localhost",
        "subjectAltName=DNS:localhost\nbasicConstraints=critical,CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    );
    let (client_cert, client_key) = signed(
        dir.path(),
        "test-ca",
        "client",
        CERT_USER,
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n\
         extendedKeyUsage=clientAuth\n",
    );
    Pki {
        _dir: dir,
        ca,
        wrong_ca,
        server_cert,
        server_key,
        client_cert,
        client_key,
    }
}

/// A running TLS-only cluster with the owner's database set up.
struct TlsServer {
    cluster: Cluster,
    pki: Pki,
}

fn path(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

fn quoted(path: &Path) -> String {
    format!("'{}'", self::path(path).replace('\'', "''"))
}

impl TlsServer {
    /// Starts the cluster (or skips loudly / fails under DUET_REQUIRE_DATABASE=1).
    async fn start(test: &str) -> Option<TlsServer> {
        let pki = make_pki();
        // PostgreSQL refuses a key file others can read, and reads it as the server user.
        let server_user = duet_harness::cluster::server_user().unwrap_or(None);
        for file in [&pki.server_key, &pki.server_cert, &pki.ca] {
            if let Some(user) = server_user {
                std::os::unix::fs::chown(file, Some(user.uid), Some(user.gid))
                    .unwrap_or_else(|err| panic!("chown {}: {err}", file.display()));
            }
            let mode = if file == &pki.server_key {
                0o600
            } else {
                0o644
            };
            std::fs::set_permissions(file, std::fs::Permissions::from_mode(mode))
                .unwrap_or_else(|err| panic!("chmod {}: {err}", file.display()));
        }
        let options = ClusterOptions {
            settings: vec![
                ("ssl".into(), "on".into()),
                ("ssl_cert_file".into(), quoted(&pki.server_cert)),
                ("ssl_key_file".into(), quoted(&pki.server_key)),
                ("ssl_ca_file".into(), quoted(&pki.ca)),
                ("log_connections".into(), "on".into()),
            ],
            ..ClusterOptions::default()
        };
        let cluster = throwaway_cluster_or_skip(test, options)?;
        let server = TlsServer { cluster, pki };

        let admin = connect(&server.local_config("postgres", "postgres")).await;
        admin
            .client
            .batch_execute(&format!(
                "SET password_encryption = 'scram-sha-256';
                 CREATE ROLE {OWNER} LOGIN PASSWORD '{OWNER_PASSWORD}';
                 CREATE ROLE {CERT_USER} LOGIN;"
            ))
            .await
            .expect("creating the roles");
        // On its own: CREATE DATABASE cannot run in the implicit transaction of a batch.
        admin
            .client
            .batch_execute(&format!("CREATE DATABASE {DB} OWNER {OWNER}"))
            .await
            .expect("creating the owner's database");
        let owner = connect(&server.local_config(OWNER, DB)).await;
        owner
            .client
            .batch_execute(&format!(
                "CREATE SCHEMA tls;
                 CREATE TABLE tls.t (id int PRIMARY KEY, v text NOT NULL);
                 INSERT INTO tls.t SELECT g, 'row ' || g FROM generate_series(1, 3000) g;
                 ANALYZE tls.t;
                 GRANT USAGE ON SCHEMA tls TO {CERT_USER};
                 GRANT SELECT ON tls.t TO {CERT_USER};"
            ))
            .await
            .expect("creating the owner's table");

        // Only TLS over TCP from now on (the harness's trust lines are gone), then reload.
        std::fs::write(
            server.cluster.data_dir().join("pg_hba.conf"),
            format!(
                "local all all trust\n\
                 hostssl all {CERT_USER} 127.0.0.1/32 cert\n\
                 hostssl all all 127.0.0.1/32 scram-sha-256\n"
            ),
        )
        .expect("writing pg_hba.conf");
        admin
            .client
            .batch_execute("SELECT pg_reload_conf()")
            .await
            .expect("reloading the configuration");
        let mut plain = Config::new();
        plain
            .host("127.0.0.1")
            .port(server.cluster.port())
            .user("postgres")
            .dbname("postgres")
            .connect_timeout(Duration::from_secs(5));
        wait_for_async(
            "pg_hba.conf to refuse plain TCP",
            Duration::from_secs(30),
            || async {
                match try_connect(&plain).await {
                    Err(err) if err.code().is_some_and(|c| c.code() == "28000") => Some(()),
                    _ => None,
                }
            },
        )
        .await;
        Some(server)
    }

    /// The test's own connection over the unix socket (trust), as `user`.
    fn local_config(&self, user: &str, db: &str) -> Config {
        let mut config = Config::new();
        config
            .host_path(self.cluster.socket_dir())
            .port(self.cluster.port())
            .user(user)
            .dbname(db)
            .connect_timeout(Duration::from_secs(10));
        config
    }

    /// duet's backend URL as the owner, to `host`, with `params` (the TLS parameters).
    fn url(&self, host: &str, params: &str) -> String {
        format!(
            "postgres://{OWNER}:{}@{host}:{}/{DB}?{params}",
            OWNER_PASSWORD.replace(' ', "%20"),
            self.cluster.port()
        )
    }

    /// `sslmode=verify-full&sslrootcert=<test CA>`.
    fn verify_full(&self) -> String {
        format!("sslmode=verify-full&sslrootcert={}", path(&self.pki.ca))
    }
}

/// A tokio-postgres configuration through `duet` as the owner, with its password.
fn owner_through(duet: &DuetProcess) -> Config {
    let mut config = duet.config(OWNER, DB);
    config.password(OWNER_PASSWORD);
    config
}

/// Whether the session's own backend connection is TLS, as the server sees it.
async fn backend_ssl(session: &Session) -> bool {
    session
        .client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .expect("reading pg_stat_ssl through duet")
        .get(0)
}

/// Waits for duet's start-up check to log `needle`.
fn wait_for_log(duet: &DuetProcess, needle: &str) -> String {
    wait_for(
        &format!("duet to log {needle:?}"),
        Duration::from_secs(30),
        || {
            let log = duet.log();
            log.contains(needle).then_some(log)
        },
    )
}

/// The FATAL a login through duet got (panics when it succeeded).
async fn login_error(config: &Config, what: &str) -> (String, String) {
    match try_connect(config).await {
        Ok(_) => panic!("{what}: the login succeeded but should have failed"),
        Err(err) => {
            let db = err
                .as_db_error()
                .unwrap_or_else(|| panic!("{what}: no server error: {err:?}"));
            // Shown with --nocapture: what a user would read.
            eprintln!(
                "{what}: {} {}: {}",
                db.severity(),
                db.code().code(),
                db.message()
            );
            assert_eq!(db.severity(), "FATAL", "{what}");
            (db.code().code().to_owned(), db.message().to_owned())
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_reach_a_tls_only_backend_over_verified_tls() {
    let test = "clients_reach_a_tls_only_backend_over_verified_tls";
    let Some(server) = TlsServer::start(test).await else {
        return;
    };
    let duet = DuetProcess::start(&server.url("localhost", &server.verify_full()), &[]);
    let log = wait_for_log(&duet, "backend reachable over TLS");
    assert!(
        log.contains("certificate and host name verified"),
        "the start-up check should say what is verified:\n{log}"
    );
    let status = duet.status();
    assert!(
        status["backend_tls"].as_str().is_some_and(
            |tls| tls.starts_with("sslmode=verify-full, certificate and host name verified")
        ),
        "status should say how the backend link is secured: {}",
        status["backend_tls"]
    );

    // tokio-postgres: SCRAM relayed over TLS, and the session is encrypted on the server's side.
    let session = connect(&owner_through(&duet)).await;
    assert!(
        backend_ssl(&session).await,
        "the session's backend is not TLS"
    );
    let rows: i64 = session
        .client
        .query_one("SELECT count(*) FROM tls.t", &[])
        .await
        .expect("reading the owner's table")
        .get(0);
    assert_eq!(rows, 3000);

    // psql, with PGPASSWORD.
    let target = duet.target(OWNER, DB).with_password(OWNER_PASSWORD);
    let out = psql(
        &target,
        &[
            "-At",
            "-c",
            "SELECT ssl, current_user FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        ],
        None,
    );
    out.assert_success();
    assert_eq!(out.stdout_text().trim(), format!("t|{OWNER}"));

    // A wrong password gets PostgreSQL's own answer, over TLS as well.
    let mut wrong = owner_through(&duet);
    wrong.password("not the password");
    let (code, message) = login_error(&wrong, "a wrong password").await;
    assert_eq!(code, "28P01");
    assert_eq!(
        message,
        format!("password authentication failed for user \"{OWNER}\"")
    );

    // A cancel request reaches the TLS-only server (duet opens it the way the session went).
    let sleeper = connect(&owner_through(&duet)).await;
    let token = sleeper.client.cancel_token();
    let sleeping =
        tokio::spawn(async move { sleeper.client.simple_query("SELECT pg_sleep(60)").await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    token
        .cancel_query(tokio_postgres::NoTls)
        .await
        .expect("sending the cancel request to duet");
    let outcome = tokio::time::timeout(Duration::from_secs(30), sleeping)
        .await
        .expect("the cancelled query did not end within 30s")
        .expect("the sleeper task");
    let err = outcome.expect_err("pg_sleep(60) was not cancelled");
    assert_eq!(
        err.code().map(|c| c.code()),
        Some("57014"),
        "expected query_canceled: {err:?}"
    );

    // Clients on TLS to duet as well: libpq supports channel binding there, and PostgreSQL, which
    // offers it over duet's TLS, refuses such a client. duet says why and what to do.
    let tls_duet = DuetProcess::start(
        &server.url("localhost", &server.verify_full()),
        &[
            "--tls-cert",
            path(&server.pki.server_cert),
            "--tls-key",
            path(&server.pki.server_key),
        ],
    );
    let tls_target = tls_duet
        .target(OWNER, DB)
        .with("sslmode=require")
        .with_password(OWNER_PASSWORD);
    let refused = psql(&tls_target, &["-At", "-c", "SELECT 1"], None);
    assert_eq!(refused.code(), Some(2), "{}", refused.stderr);
    assert!(
        refused.stderr.contains("channel binding")
            && refused.stderr.contains("channel_binding=disable"),
        "expected duet's explanation:\n{}",
        refused.stderr
    );
    let out = psql(
        &tls_target.with("channel_binding=disable"),
        &[
            "-At",
            "-c",
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        ],
        None,
    );
    out.assert_success();
    assert_eq!(out.stdout_text().trim(), "t");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_online_migration_runs_over_tls_as_the_table_owner() {
    let test = "an_online_migration_runs_over_tls_as_the_table_owner";
    let Some(server) = TlsServer::start(test).await else {
        return;
    };
    let duet = DuetProcess::start(&server.url("localhost", &server.verify_full()), &[]);
    let app = connect(&owner_through(&duet)).await;
    let direct = connect(&server.local_config("postgres", DB)).await;
    let owner_is_superuser: bool = direct
        .client
        .query_one(
            "SELECT rolsuper FROM pg_roles WHERE rolname = $1",
            &[&OWNER],
        )
        .await
        .expect("reading the owner's role")
        .get(0);
    assert!(!owner_is_superuser);

    let id = migrate_sql(&duet, "ALTER TABLE tls.t ALTER COLUMN id TYPE bigint").await;
    // duet's control connections, as the server sees them while the migration runs.
    let control_sql = "SELECT count(*), coalesce(bool_and(s.ssl), false)
                         FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
                        WHERE a.application_name = 'duet-control'";
    let (count, all_ssl): (i64, bool) = wait_for_async(
        "a duet-control backend",
        Duration::from_secs(60),
        || async {
            let row = direct
                .client
                .query_one(control_sql, &[])
                .await
                .expect("reading pg_stat_ssl");
            let count: i64 = row.get(0);
            (count > 0).then(|| (count, row.get(1)))
        },
    )
    .await;
    assert!(
        all_ssl,
        "{count} duet-control backend(s), not all of them over TLS"
    );

    // Writes through duet during the migration.
    app.client
        .batch_execute("INSERT INTO tls.t VALUES (3001, 'during'); UPDATE tls.t SET v = 'changed' WHERE id = 7")
        .await
        .expect("writes through duet while copying");
    wait_phase(&duet, id, "ready").await;
    request(&duet, json!({"command": "cutover", "budget_ms": 5000}))
        .await
        .expect_ok("cutover");
    request(&duet, json!({"command": "complete"}))
        .await
        .expect_ok("complete");
    wait_phase(&duet, id, "completed").await;
    assert_eq!(
        column_type(&direct.client, "tls", "t", "id").await,
        "bigint"
    );
    let row = direct
        .client
        .query_one(
            "SELECT count(*), (SELECT v FROM tls.t WHERE id = 7) FROM tls.t",
            &[],
        )
        .await
        .expect("reading the migrated table");
    assert_eq!(row.get::<_, i64>(0), 3001);
    assert_eq!(row.get::<_, String>(1), "changed");
    let (count, all_ssl): (i64, bool) = {
        let row = direct
            .client
            .query_one(control_sql, &[])
            .await
            .expect("reading pg_stat_ssl");
        (row.get(0), row.get(1))
    };
    assert!(count == 0 || all_ssl, "a duet-control backend without TLS");

    // Every connection the server authorized over TCP was TLS (pg_hba.conf allows nothing else),
    // and duet's control connections were among them.
    let log = std::fs::read_to_string(server.cluster.log_path()).unwrap_or_default();
    let control: Vec<&str> = log
        .lines()
        .filter(|l| {
            l.contains("connection authorized") && l.contains("application_name=duet-control")
        })
        .collect();
    assert!(
        !control.is_empty(),
        "no duet-control connection in the server log:\n{log}"
    );
    for line in control {
        assert!(
            line.contains("SSL enabled"),
            "a control connection without TLS: {line}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_problems_are_named_and_every_sslmode_behaves_like_libpq() {
    let test = "certificate_problems_are_named_and_every_sslmode_behaves_like_libpq";
    let Some(server) = TlsServer::start(test).await else {
        return;
    };
    let ca = path(&server.pki.ca);
    let wrong_ca = path(&server.pki.wrong_ca);

    // A CA that did not sign the server's certificate: refused at start-up in the log, and at
    // every login with the reason and the file.
    let duet = DuetProcess::start(
        &server.url(
            "localhost",
            &format!("sslmode=verify-full&sslrootcert={wrong_ca}"),
        ),
        &[],
    );
    // The start-up check's own line (the fleet's control connection may log the same TLS
    // failure a moment earlier).
    let log = wait_for_log(&duet, "TLS fails");
    assert!(
        log.contains("certificate verify failed: unknown issuer"),
        "{log}"
    );
    let (code, message) = login_error(&owner_through(&duet), "a wrong CA").await;
    assert_eq!(code, "08006");
    assert!(
        message.contains("certificate verify failed: unknown issuer")
            && message.contains(&format!("sslrootcert={wrong_ca}")),
        "{message}"
    );
    let out = psql(
        &duet.target(OWNER, DB).with_password(OWNER_PASSWORD),
        &["-c", "SELECT 1"],
        None,
    );
    assert_eq!(out.code(), Some(2));
    assert!(
        out.stderr
            .contains("certificate verify failed: unknown issuer"),
        "{}",
        out.stderr
    );
    drop(duet);

    // As in libpq, sslmode=require with a root certificate verifies the chain.
    let duet = DuetProcess::start(
        &server.url(
            "localhost",
            &format!("sslmode=require&sslrootcert={wrong_ca}"),
        ),
        &[],
    );
    let (_, message) = login_error(&owner_through(&duet), "require with a wrong CA").await;
    assert!(message.contains("unknown issuer"), "{message}");
    drop(duet);

    // The certificate names localhost, not 127.0.0.1: verify-full refuses, verify-ca does not.
    let duet = DuetProcess::start(&server.url("127.0.0.1", &server.verify_full()), &[]);
    wait_for_log(&duet, "not valid for host name");
    let (code, message) = login_error(&owner_through(&duet), "a wrong host name").await;
    assert_eq!(code, "08006");
    assert!(
        message.contains("not valid for host name \"127.0.0.1\"") && message.contains("localhost"),
        "{message}"
    );
    drop(duet);
    let duet = DuetProcess::start(
        &server.url("127.0.0.1", &format!("sslmode=verify-ca&sslrootcert={ca}")),
        &[],
    );
    assert!(backend_ssl(&connect(&owner_through(&duet)).await).await);
    drop(duet);

    // require without a root certificate encrypts without checking (libpq's meaning); prefer and
    // allow end up on TLS too, since the server refuses plain connections.
    for params in ["sslmode=require", "sslmode=prefer", "sslmode=allow"] {
        let duet = DuetProcess::start(&server.url("127.0.0.1", params), &[]);
        let session = connect(&owner_through(&duet)).await;
        assert!(backend_ssl(&session).await, "{params}: not TLS");
        // Refused on both attempts: the client reads the refusal that names the real problem
        // (over TLS), not the server's "no encryption" rule for the plain one.
        let mut elsewhere = owner_through(&duet);
        elsewhere.dbname("no_such_db");
        let (code, message) = login_error(&elsewhere, &format!("{params}, no such database")).await;
        assert_eq!(code, "3D000", "{params}: {message}");
    }

    // disable: the server's own refusal reaches the client.
    let duet = DuetProcess::start(&server.url("localhost", "sslmode=disable"), &[]);
    let (code, message) = login_error(&owner_through(&duet), "sslmode=disable").await;
    assert_eq!(code, "28000");
    assert!(
        message.contains("no pg_hba.conf entry") && message.contains("no encryption"),
        "{message}"
    );
    drop(duet);

    // The platform's roots (rustls-native-certs reads SSL_CERT_FILE, as OpenSSL does).
    let duet = DuetProcess::start_with_env(
        &server.url("localhost", "sslrootcert=system"),
        &[],
        &[("SSL_CERT_FILE", ca)],
    );
    assert!(backend_ssl(&connect(&owner_through(&duet)).await).await);
    drop(duet);

    // A client certificate: the cert_user role logs in with it alone.
    let with_cert = format!(
        "{}&sslcert={}&sslkey={}",
        server.verify_full(),
        path(&server.pki.client_cert),
        path(&server.pki.client_key)
    );
    let duet = DuetProcess::start(&server.url("localhost", &with_cert), &[]);
    let session = connect(&duet.config(CERT_USER, DB)).await;
    let row = session
        .client
        .query_one(
            "SELECT current_user::text, client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .expect("a query as the certificate's user");
    assert_eq!(row.get::<_, String>(0), CERT_USER);
    assert_eq!(row.get::<_, String>(1), format!("/CN={CERT_USER}"));
    drop(duet);
    let duet = DuetProcess::start(&server.url("localhost", &server.verify_full()), &[]);
    let (code, message) = login_error(&duet.config(CERT_USER, DB), "no client certificate").await;
    assert_eq!(code, "28000");
    assert!(message.contains("certificate"), "{message}");
    drop(duet);

    // sslnegotiation=direct: PostgreSQL 17+ only, so here through a second duet that serves TLS
    // (and, like PostgreSQL, accepts a direct handshake only with ALPN "postgresql").
    let inner = DuetProcess::start(
        &server.url("localhost", &server.verify_full()),
        &[
            "--tls-cert",
            path(&server.pki.server_cert),
            "--tls-key",
            path(&server.pki.server_key),
        ],
    );
    let outer_url = format!(
        "postgres://{OWNER}:{}@localhost:{}/{DB}?{}&sslnegotiation=direct",
        OWNER_PASSWORD.replace(' ', "%20"),
        inner.port(),
        server.verify_full()
    );
    let outer = DuetProcess::start(&outer_url, &[]);
    let log = wait_for_log(&outer, "backend reachable over TLS");
    assert!(log.contains("direct negotiation"), "{log}");
    let session = connect(&owner_through(&outer)).await;
    assert!(backend_ssl(&session).await);
    drop(session);
    // The same outer duet against a duet without TLS: the direct handshake is refused, which a
    // connection that had negotiated with SSLRequest would not have been (it would read `N`).
    let plain_inner = DuetProcess::start(&server.url("localhost", &server.verify_full()), &[]);
    let outer = DuetProcess::start(
        &format!(
            "postgres://{OWNER}:{}@localhost:{}/{DB}?{}&sslnegotiation=direct",
            OWNER_PASSWORD.replace(' ', "%20"),
            plain_inner.port(),
            server.verify_full()
        ),
        &[],
    );
    let (code, message) = login_error(&owner_through(&outer), "direct TLS to a plain server").await;
    assert_eq!(code, "08006");
    assert!(message.contains("TLS"), "{message}");

    // `duet check --database` reads the live schema with the same TLS parameters.
    let files = TempDir::new("backend-tls-check");
    let migration = files.join("01_widen.sql");
    std::fs::write(
        &migration,
        "ALTER TABLE tls.t ALTER COLUMN id TYPE bigint;\n",
    )
    .expect("writing the migration file");
    let check = |params: &str| {
        let mut duet_check = std::process::Command::new(crate::support::duet_process::DUET_BIN);
        duet_check
            .current_dir(files.path())
            .args(["check", "--format", "json", "--database"])
            .arg(server.url("localhost", params))
            .arg(&migration);
        run(duet_check, None, Duration::from_secs(60))
    };
    let verified = check(&server.verify_full());
    assert!(
        matches!(verified.code(), Some(0 | 1)),
        "duet check over verified TLS failed:\n{}",
        verified.stderr
    );
    assert!(
        verified.stdout_text().contains("tls.t"),
        "{}",
        verified.stdout_text()
    );
    let refused = check(&format!("sslmode=verify-full&sslrootcert={wrong_ca}"));
    assert_eq!(refused.code(), Some(2), "{}", refused.stderr);
    assert!(
        refused
            .stderr
            .contains("certificate verify failed: unknown issuer"),
        "{}",
        refused.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_tls_and_a_backend_that_is_down() {
    let test = "a_server_without_tls_and_a_backend_that_is_down";
    let Some(cluster) = throwaway_cluster_or_skip(test, ClusterOptions::default()) else {
        return;
    };
    let url = |params: &str| {
        format!(
            "postgres://postgres@127.0.0.1:{}/postgres?{params}",
            cluster.port()
        )
    };

    // sslmode=require against a server that answers the SSLRequest with N.
    let duet = DuetProcess::start(&url("sslmode=require"), &[]);
    wait_for_log(
        &duet,
        "does not accept TLS connections, but sslmode=require requires TLS",
    );
    let (code, message) =
        login_error(&duet.config("postgres", "postgres"), "require without TLS").await;
    assert_eq!(code, "08006");
    assert!(message.contains("does not accept TLS"), "{message}");
    drop(duet);

    // prefer settles for plain, as libpq does, and the start-up check says so.
    let duet = DuetProcess::start(&url("sslmode=prefer"), &[]);
    wait_for_log(&duet, "without TLS");
    let session = connect(&duet.config("postgres", "postgres")).await;
    assert!(!backend_ssl(&session).await);
    drop(duet);

    // A backend that is down: duet starts anyway and says so once.
    let port = crate::support::free_port();
    let duet = DuetProcess::start(
        &format!("postgres://postgres@127.0.0.1:{port}/postgres?sslmode=require"),
        &[],
    );
    wait_for_log(&duet, "cannot reach the backend now");
}
