//! Authentication relayed through duet, and TLS between the client and duet.
//!
//! A throwaway cluster whose pg_hba.conf requires md5 for one role, scram-sha-256 for another and a
//! cleartext password for a third: through duet the right password logs in and a wrong one gets
//! PostgreSQL's own 28P01. TLS: duet serves a self-signed certificate made with openssl; psql and
//! psycopg with `sslmode=require` report an encrypted connection, `sslmode=disable` still works,
//! and SCRAM over duet's TLS must not offer channel binding (SCRAM-SHA-256-PLUS) it cannot honour.

use std::time::Duration;

use duet_harness::cluster::ClusterOptions;

use crate::support::cluster::superuser_config;
use crate::support::database::run_sql;
use crate::support::pg_client::{connect, try_connect};
use crate::support::tools::{command, psql, python, run, Target};
use crate::support::{
    backend_or_skip, skip_or_fail, tests_path, throwaway_cluster_or_skip, DuetProcess, TempDir,
    TestDatabase,
};

/// (role, hba method, password) of the roles the auth test creates.
const ROLES: &[(&str, &str, &str)] = &[
    ("md5_user", "md5", "md5 secret ✓"),
    ("scram_user", "scram-sha-256", "scram secret"),
    ("cleartext_user", "password", "plain secret"),
];

/// A self-signed certificate for 127.0.0.1/localhost, made by the openssl CLI.
pub(crate) struct Certificate {
    pub(crate) cert: std::path::PathBuf,
    pub(crate) key: std::path::PathBuf,
}

/// Makes the certificate and its key in `dir`.
pub(crate) fn self_signed_certificate(dir: &TempDir) -> Certificate {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let mut openssl = command("openssl");
    openssl.args([
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "2",
    ]);
    openssl.args([
        "-subj",
        "/CN=localhost",
        "-addext",
        "subjectAltName=IP:127.0.0.1,DNS:localhost",
    ]);
    openssl.arg("-keyout").arg(&key).arg("-out").arg(&cert);
    run(openssl, None, Duration::from_secs(60)).assert_success();
    Certificate { cert, key }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn md5_scram_and_cleartext_passwords_are_relayed() {
    let test = "md5_scram_and_cleartext_passwords_are_relayed";
    let options = ClusterOptions {
        hba: ROLES
            .iter()
            .map(|(role, method, _)| format!("host all {role} 127.0.0.1/32 {method}"))
            .collect(),
        ..ClusterOptions::default()
    };
    let Some(cluster) = throwaway_cluster_or_skip(test, options) else {
        return;
    };
    let setup = ROLES
        .iter()
        .map(|(role, method, password)| {
            let encryption = if *method == "md5" { "md5" } else { "scram-sha-256" };
            format!("SET password_encryption = '{encryption}'; CREATE ROLE {role} LOGIN PASSWORD '{password}';")
        })
        .collect::<String>();
    run_sql(&superuser_config(&cluster, "postgres"), &setup).expect("creating the roles");
    // The md5 role really has an md5 hash (else the server would silently use SCRAM for it).
    let check = "DO $$ BEGIN IF NOT (SELECT rolpassword LIKE 'md5%' FROM pg_authid WHERE rolname = 'md5_user')
                 OR NOT (SELECT rolpassword LIKE 'SCRAM-SHA-256$%' FROM pg_authid WHERE rolname = 'scram_user')
                 THEN RAISE EXCEPTION 'unexpected password hashes'; END IF; END $$";
    run_sql(&superuser_config(&cluster, "postgres"), check).expect("password hash kinds");

    let duet = DuetProcess::start(&cluster.url("postgres", None, "postgres"), &[]);
    for (role, method, password) in ROLES {
        // psql with PGPASSWORD.
        let target = duet.target(role, "postgres");
        let good = psql(
            &target.with_password(password),
            &["-At", "-c", "SELECT current_user"],
            None,
        );
        good.assert_success();
        assert_eq!(
            good.stdout_text().trim(),
            *role,
            "{method}: logged in as someone else"
        );
        let bad = psql(
            &target.with_password("wrong password"),
            &["-At", "-c", "SELECT 1"],
            None,
        );
        assert_eq!(
            bad.code(),
            Some(2),
            "{method}: psql with a wrong password must fail:\n{}",
            bad.stderr
        );
        assert!(
            bad.stderr.contains(&format!(
                "password authentication failed for user \"{role}\""
            )),
            "{method}: expected PostgreSQL's own message, got:\n{}",
            bad.stderr
        );

        // tokio-postgres.
        let mut config = duet.config(role, "postgres");
        config.password(*password);
        let session = connect(&config).await;
        let user: String = session
            .client
            .query_one("SELECT current_user::text", &[])
            .await
            .expect("query after auth")
            .get(0);
        assert_eq!(user, *role);
        config.password("wrong password");
        let err = match try_connect(&config).await {
            Ok(_) => panic!("{method}: tokio-postgres logged in with a wrong password"),
            Err(err) => err,
        };
        let db_error = err
            .as_db_error()
            .unwrap_or_else(|| panic!("{method}: wrong password gave no server error: {err:?}"));
        assert_eq!(db_error.code().code(), "28P01", "{method}");
        assert_eq!(db_error.severity(), "FATAL");
        assert_eq!(
            db_error.message(),
            format!("password authentication failed for user \"{role}\"")
        );
    }

    // A client that stops in the middle of authentication is a "starting" session, and gone from
    // duet's books once it hangs up.
    {
        let mut stream = tokio::net::TcpStream::connect(duet.listen())
            .await
            .expect("connect");
        let startup = crate::support::wire::startup_message(&[
            ("user", "scram_user"),
            ("database", "postgres"),
        ]);
        let challenge = crate::support::wire::send_and_collect_open(
            &mut stream,
            &startup,
            Duration::from_secs(2),
        )
        .await;
        let sasl = challenge
            .messages
            .iter()
            .find(|m| m.tag == b'R')
            .unwrap_or_else(|| panic!("no authentication request: {challenge:?}"));
        let mechanisms = String::from_utf8_lossy(&sasl.body[4..]).into_owned();
        assert!(mechanisms.contains("SCRAM-SHA-256"), "{mechanisms:?}");
        assert!(
            !mechanisms.contains("PLUS"),
            "SCRAM-SHA-256-PLUS offered: {mechanisms:?}"
        );
        crate::support::wait_for_async(
            "a starting session in status",
            Duration::from_secs(20),
            || async {
                let status = duet.status_async().await;
                status["sessions"]
                    .as_array()
                    .is_some_and(|sessions| {
                        sessions
                            .iter()
                            .any(|s| s["user"] == "scram_user" && s["state"] == "starting")
                    })
                    .then_some(())
            },
        )
        .await;
        drop(stream);
        crate::support::wait_for_async(
            "the half-authenticated client to be gone",
            Duration::from_secs(20),
            || async { (duet.status_async().await["clients"]["current"] == 0).then_some(()) },
        )
        .await;
    }

    // SCRAM through duet's TLS: duet must not offer SCRAM-SHA-256-PLUS (its TLS is not the
    // backend's, channel binding could never verify). libpq prefers PLUS when offered.
    let certs = TempDir::new("scram-tls");
    let certificate = self_signed_certificate(&certs);
    let tls_duet = DuetProcess::start(
        &cluster.url("postgres", None, "postgres"),
        &[
            "--tls-cert",
            path(&certificate.cert),
            "--tls-key",
            path(&certificate.key),
        ],
    );
    let scram = tls_duet
        .target("scram_user", "postgres")
        .with("sslmode=require")
        .with_password("scram secret");
    let over_tls = psql(&scram, &["-At", "-c", "SELECT current_user"], None);
    over_tls.assert_success();
    assert_eq!(over_tls.stdout_text().trim(), "scram_user");
    let bound = psql(
        &scram.with("channel_binding=require"),
        &["-At", "-c", "SELECT 1"],
        None,
    );
    assert_eq!(
        bound.code(),
        Some(2),
        "channel_binding=require must fail: duet cannot offer SCRAM-SHA-256-PLUS"
    );
    assert!(
        bound.stderr.contains("channel binding"),
        "unexpected failure:\n{}",
        bound.stderr
    );
}

fn path(path: &std::path::Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

#[test]
fn tls_with_psql_and_psycopg() {
    let test = "tls_with_psql_and_psycopg";
    let Some(backend) = backend_or_skip(test) else {
        return;
    };
    let db = TestDatabase::create(&backend, "tls");
    let certs = TempDir::new("tls");
    let certificate = self_signed_certificate(&certs);
    let duet = DuetProcess::start(
        &backend.url(db.name()),
        &[
            "--tls-cert",
            path(&certificate.cert),
            "--tls-key",
            path(&certificate.key),
        ],
    );
    let mut target = duet.target(&backend.user, db.name());
    if let Some(password) = &backend.password {
        target = target.with_password(password);
    }

    let encrypted = psql(&target.with("sslmode=require"), &["-c", "\\conninfo"], None);
    encrypted.assert_success();
    assert!(
        encrypted
            .stdout_text()
            .contains("SSL connection (protocol: TLSv1."),
        "psql sslmode=require did not report TLS:\n{}",
        encrypted.stdout_text()
    );
    // The certificate served is ours (verify-full checks chain and host name).
    let verified = target.with(&format!(
        "sslmode=verify-full sslrootcert={}",
        path(&certificate.cert)
    ));
    let verified = psql(&verified, &["-At", "-c", "SELECT 'verified'"], None);
    verified.assert_success();
    assert_eq!(verified.stdout_text().trim(), "verified");

    let plain = psql(&target.with("sslmode=disable"), &["-c", "\\conninfo"], None);
    plain.assert_success();
    assert!(
        !plain.stdout_text().contains("SSL connection"),
        "sslmode=disable used TLS:\n{}",
        plain.stdout_text()
    );

    // Several MB over TLS: identical to a plain direct read.
    let query = "SELECT i, repeat(md5(i::text), 10) FROM generate_series(1, 20000) i";
    let over_tls = psql(&target.with("sslmode=require"), &["-At", "-c", query], None);
    over_tls.assert_success();
    let direct_target = Target::tcp(&backend.host, backend.port, &backend.user, db.name());
    let direct_target = match &backend.password {
        Some(password) => direct_target.with_password(password),
        None => direct_target,
    };
    let direct = psql(
        &direct_target.with("sslmode=disable"),
        &["-At", "-c", query],
        None,
    );
    direct.assert_success();
    assert!(
        over_tls.stdout.len() > 6_000_000,
        "expected > 6 MB, got {}",
        over_tls.stdout.len()
    );
    assert!(
        over_tls.stdout == direct.stdout,
        "a large result over TLS differs from direct"
    );

    // Several MB the other way, client → duet over TLS: COPY FROM STDIN, compared on the server.
    db.execute(
        "CREATE TABLE tls_in (id int, line text); CREATE TABLE plain_in (id int, line text)",
    );
    let mut data = String::new();
    for i in 1..=40_000u32 {
        data.push_str(&format!("{i}\t{}{i}\n", "z".repeat(120)));
    }
    for (target, table) in [
        (target.with("sslmode=require"), "tls_in"),
        (direct_target.with("sslmode=disable"), "plain_in"),
    ] {
        let copied = psql(
            &target,
            &[
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                &format!("COPY {table} FROM STDIN"),
            ],
            Some(data.as_bytes()),
        );
        copied.assert_success();
        assert!(
            copied.stdout_text().contains("COPY 40000"),
            "{}",
            copied.stdout_text()
        );
    }
    let same = psql(
        &direct_target,
        &[
            "-At",
            "-c",
            "SELECT (SELECT md5(string_agg(id || line, ',' ORDER BY id)) FROM tls_in)
                  = (SELECT md5(string_agg(id || line, ',' ORDER BY id)) FROM plain_in)",
        ],
        None,
    );
    same.assert_success();
    assert_eq!(
        same.stdout_text().trim(),
        "t",
        "COPY over TLS stored different rows"
    );

    // psql's Ctrl-C over a TLS session: libpq sends the CancelRequest on a new, unencrypted
    // connection; duet must route it to this session's backend.
    let mut sleeper = crate::support::tools::command("psql");
    sleeper
        .arg("-X")
        .arg("-d")
        .arg(
            &target
                .with("sslmode=require application_name=e2e-tls-sleeper")
                .conninfo,
        )
        .args(["-c", "SELECT pg_sleep(30)"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    if let Some(password) = &target.password {
        sleeper.env("PGPASSWORD", password);
    }
    let child = sleeper.spawn().expect("starting psql");
    let observer = db.direct_config();
    crate::support::wait_for("psql's pg_sleep to run", Duration::from_secs(30), || {
        crate::support::database::run_sql(
            &observer,
            "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE application_name = 'e2e-tls-sleeper'
               AND state = 'active' AND query LIKE 'SELECT pg_sleep%') THEN RAISE EXCEPTION 'not yet'; END IF; END $$",
        )
        .ok()
    });
    let pid = i32::try_from(child.id()).expect("pid fits i32");
    // SAFETY: kill(2) on our own psql child; SIGINT makes psql send a cancel request.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let output = child.wait_with_output().expect("waiting for psql");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("canceling statement due to user request"),
        "psql's cancel did not reach the backend (exit {:?}):\n{stderr}",
        output.status.code()
    );

    // psycopg (libpq in another process, another driver's TLS setup).
    let mut env = vec![("DSN", target.conninfo.as_str())];
    if let Some(password) = &target.password {
        env.push(("PGPASSWORD", password.as_str()));
    }
    let output = python(&tests_path("python/psycopg_tls.py"), &[], &env);
    if output.code() == Some(77) {
        // Fails instead of skipping when DUET_REQUIRE_DATABASE=1.
        let _: Option<()> = skip_or_fail(
            test,
            "python3 cannot import psycopg; pip install 'psycopg[binary]' (only the psycopg part is skipped)",
        );
    } else {
        output.assert_success();
        let said = output.stdout_text();
        assert!(said.contains("TLS OK"), "{said}");
        assert!(
            said.contains("direct TLS OK") || said.contains("predates sslnegotiation=direct"),
            "{said}"
        );
    }

    // A client that gets 'S' and then sends garbage (or a plaintext startup) instead of a TLS
    // handshake is closed; TLS clients keep working.
    let mut rng = crate::support::wire::SeededRng::new(0x7150);
    let plaintext_startup = crate::support::wire::startup_message(&[("user", "postgres")]);
    for garbage in [rng.bytes(1500), plaintext_startup] {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(duet.listen()).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        stream
            .write_all(&crate::support::wire::negotiation_request(
                crate::support::wire::SSL_REQUEST_CODE,
            ))
            .expect("SSLRequest");
        let mut answer = [0u8; 1];
        stream
            .read_exact(&mut answer)
            .expect("the SSLRequest answer");
        assert_eq!(
            answer[0], b'S',
            "duet with a certificate must accept SSLRequest"
        );
        let _ = stream.write_all(&garbage);
        let mut rest = Vec::new();
        match stream.read_to_end(&mut rest) {
            Ok(_) => {}
            Err(err) => assert!(
                !matches!(
                    err.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ),
                "duet did not close a connection whose TLS handshake was garbage"
            ),
        }
    }
    let still = psql(
        &target.with("sslmode=require"),
        &["-At", "-c", "SELECT 'still TLS'"],
        None,
    );
    still.assert_success();
    assert_eq!(still.stdout_text().trim(), "still TLS");

    // Every one of those TLS and failed-TLS connections is gone from duet's books.
    crate::support::wait_for("clients.current back to 0", Duration::from_secs(20), || {
        (duet.status()["clients"]["current"] == 0).then_some(())
    });

    // Without a certificate duet answers the SSLRequest with 'N': require fails, prefer works.
    let no_tls = DuetProcess::start(&backend.url(db.name()), &[]);
    let mut target = no_tls.target(&backend.user, db.name());
    if let Some(password) = &backend.password {
        target = target.with_password(password);
    }
    let refused = psql(&target.with("sslmode=require"), &["-c", "SELECT 1"], None);
    assert_eq!(refused.code(), Some(2));
    assert!(
        refused.stderr.contains("server does not support SSL"),
        "expected libpq's 'server does not support SSL':\n{}",
        refused.stderr
    );
    psql(&target.with("sslmode=prefer"), &["-c", "SELECT 1"], None).assert_success();
}
