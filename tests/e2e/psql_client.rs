//! psql through duet: what a person at a terminal sees must be exactly what PostgreSQL gives.
//!
//! Each test runs the same thing straight to the server and through duet and compares the bytes
//! psql printed: results, error texts with their SQLSTATE (VERBOSITY verbose), notices, exit codes,
//! `\copy` in both directions, and results and inputs far larger than any proxy buffer.

use crate::support::tools::{psql, Target};
use crate::support::{backend_or_skip, tests_path, Backend, DuetProcess, TempDir, TestDatabase};

fn direct_target(backend: &Backend, db: &str) -> Target {
    let target = Target::tcp(&backend.host, backend.port, &backend.user, db);
    match &backend.password {
        Some(password) => target.with_password(password),
        None => target,
    }
}

fn duet_target(backend: &Backend, duet: &DuetProcess, db: &str) -> Target {
    let target = duet.target(&backend.user, db);
    match &backend.password {
        Some(password) => target.with_password(password),
        None => target,
    }
}

#[test]
fn psql_script_output_and_errors_match_direct() {
    let Some(backend) = backend_or_skip("psql_script_output_and_errors_match_direct") else {
        return;
    };
    let direct_db = TestDatabase::create(&backend, "psql_script_direct");
    let proxied_db = TestDatabase::create(&backend, "psql_script_duet");
    let duet = DuetProcess::start(&backend.url(proxied_db.name()), &[]);
    let script = tests_path("sql/psql_session.sql");
    let script = script.to_str().expect("utf-8 path");

    let direct = psql(
        &direct_target(&backend, direct_db.name()),
        &["-f", script],
        None,
    );
    let proxied = psql(
        &duet_target(&backend, &duet, proxied_db.name()),
        &["-f", script],
        None,
    );

    // The script ends with ON_ERROR_STOP and a syntax error: psql exits 3 after it.
    assert_eq!(direct.code(), Some(3), "direct psql: {}", direct.stderr);
    assert_eq!(
        proxied.code(),
        direct.code(),
        "psql exit code through duet: {}",
        proxied.stderr
    );
    assert_eq!(
        proxied.stdout_text(),
        direct.stdout_text(),
        "psql stdout through duet differs from direct"
    );
    assert_eq!(
        proxied.stderr, direct.stderr,
        "psql stderr (errors, notices) through duet differs from direct"
    );

    // The comparison above is only meaningful if the script did what it says.
    let stdout = proxied.stdout_text();
    for expected in ["multi", "before the stop", "item 50", "quote's"] {
        assert!(
            stdout.contains(expected),
            "{expected:?} missing from psql output:\n{stdout}"
        );
    }
    assert!(
        !stdout.contains("never reached"),
        "ON_ERROR_STOP did not stop:\n{stdout}"
    );
    assert!(
        !stdout.contains("never"),
        "statement after a failed one in a multi-statement Query ran"
    );
    for expected in [
        "ERROR:  42P01: relation \"no_such_table\" does not exist",
        "ERROR:  22012: division by zero",
        "ERROR:  23502: null value in column \"name\"",
        "ERROR:  23505: duplicate key value violates unique constraint \"items_pkey\"",
        "ERROR:  42703: column \"nme\" does not exist",
        "HINT:  Perhaps you meant to reference the column \"items.name\".",
        "ERROR:  25P02: current transaction is aborted",
        "NOTICE:  00000: notice from plpgsql",
        "WARNING:  01000: a warning",
        "ERROR:  42601: syntax error at or near \"here\"",
    ] {
        assert!(
            proxied.stderr.contains(expected),
            "{expected:?} missing from psql stderr through duet:\n{}",
            proxied.stderr
        );
    }
}

/// COPY text rows with the awkward parts of the format: NULLs, escaped tabs and backslashes,
/// multi-byte characters. Sorted by id, canonical (what COPY TO would print).
fn copy_rows(count: u32) -> String {
    let mut rows = String::new();
    for i in 1..=count {
        let note = match i % 5 {
            0 => "\\N".to_string(),
            1 => format!("tab\\there {i}"),
            2 => format!("back\\\\slash {i}"),
            3 => format!("ünïcødé ✓ {i}"),
            _ => format!("plain note {i}"),
        };
        rows.push_str(&format!("{i}\titem {i}\t{note}\t{i}.{:02}\n", i % 100));
    }
    rows
}

#[test]
fn psql_copy_both_ways_and_copy_errors() {
    let Some(backend) = backend_or_skip("psql_copy_both_ways_and_copy_errors") else {
        return;
    };
    let db = TestDatabase::create(&backend, "psql_copy");
    db.execute(
        "CREATE TABLE copied (id int PRIMARY KEY, name text, note text, amount numeric(12,2));
         CREATE TABLE copied_bad (LIKE copied)",
    );
    let duet = DuetProcess::start(&backend.url(db.name()), &[]);
    let through = duet_target(&backend, &duet, db.name());
    let direct = direct_target(&backend, db.name());
    let files = TempDir::new("psql-copy");
    let input = files.join("in.tsv");
    let rows = copy_rows(5000);
    std::fs::write(&input, &rows).expect("writing the COPY input");

    let copy_in = psql(
        &through,
        &[
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            &format!("\\copy copied FROM '{}'", input.display()),
        ],
        None,
    );
    copy_in.assert_success();
    assert!(
        copy_in.stdout_text().contains("COPY 5000"),
        "{}",
        copy_in.stdout_text()
    );

    let out_duet = files.join("out-duet.tsv");
    let out_direct = files.join("out-direct.tsv");
    for (target, file) in [(&through, &out_duet), (&direct, &out_direct)] {
        psql(
            target,
            &[
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                &format!(
                    "\\copy (SELECT * FROM copied ORDER BY id) TO '{}'",
                    file.display()
                ),
            ],
            None,
        )
        .assert_success();
    }
    let copied_out = std::fs::read_to_string(&out_duet).expect("reading COPY output through duet");
    assert_eq!(
        copied_out.len(),
        rows.len(),
        "COPY TO through duet: size differs from what was copied in"
    );
    assert!(
        copied_out == rows,
        "COPY TO through duet does not give back what COPY FROM wrote"
    );
    assert!(
        copied_out == std::fs::read_to_string(&out_direct).expect("reading direct COPY output"),
        "COPY TO through duet differs from COPY TO direct"
    );

    // A bad row in the middle of a COPY FROM: same error (with its CONTEXT line) as direct, nothing
    // copied, and the session is still usable.
    let mut bad = copy_rows(3000);
    bad = bad.replacen("2500\titem 2500", "25x0\titem 2500", 1);
    let bad_input = files.join("bad.tsv");
    std::fs::write(&bad_input, &bad).expect("writing the bad COPY input");
    let script = format!(
        "\\set VERBOSITY verbose\n\\copy copied_bad FROM '{}'\nSELECT count(*) AS after_failed_copy FROM copied_bad;\n",
        bad_input.display()
    );
    let failed_duet = psql(&through, &[], Some(script.as_bytes()));
    let failed_direct = psql(&direct, &[], Some(script.as_bytes()));
    assert_eq!(
        failed_duet.stderr, failed_direct.stderr,
        "COPY error through duet differs from direct"
    );
    assert!(
        failed_duet.stderr.contains("22P02") && failed_duet.stderr.contains("line 2500"),
        "expected invalid input syntax at line 2500:\n{}",
        failed_duet.stderr
    );
    assert_eq!(failed_duet.stdout_text(), failed_direct.stdout_text());
    assert!(
        failed_duet.stdout_text().contains("after_failed_copy"),
        "{}",
        failed_duet.stdout_text()
    );
}

#[test]
fn psql_large_result_and_large_copy_in_match_direct() {
    let Some(backend) = backend_or_skip("psql_large_result_and_large_copy_in_match_direct") else {
        return;
    };
    let db = TestDatabase::create(&backend, "psql_large");
    db.execute(
        "CREATE TABLE big_duet (id int, line text);
         CREATE TABLE big_direct (id int, line text)",
    );
    let duet = DuetProcess::start(&backend.url(db.name()), &[]);
    let through = duet_target(&backend, &duet, db.name());
    let direct = direct_target(&backend, db.name());

    // ~21 MB of result rows, server → client.
    let query = "SELECT i, md5(i::text) || repeat('x', 100) || i FROM generate_series(1, 150000) i";
    let via_duet = psql(&through, &["-At", "-c", query], None);
    via_duet.assert_success();
    let via_direct = psql(&direct, &["-At", "-c", query], None);
    via_direct.assert_success();
    assert!(
        via_duet.stdout.len() > 20_000_000,
        "expected a result over 20 MB, got {} bytes",
        via_duet.stdout.len()
    );
    assert_eq!(
        via_duet.stdout.len(),
        via_direct.stdout.len(),
        "large result size differs from direct"
    );
    assert!(
        via_duet.stdout == via_direct.stdout,
        "large result content through duet differs from direct"
    );

    // ~20 MB of COPY data, client → server.
    let mut data = String::with_capacity(21_000_000);
    for i in 1..=140_000u32 {
        data.push_str(&format!("{i}\t{}{i}\n", "y".repeat(130)));
    }
    for (target, table) in [(&through, "big_duet"), (&direct, "big_direct")] {
        let out = psql(
            target,
            &[
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                &format!("COPY {table} FROM STDIN"),
            ],
            Some(data.as_bytes()),
        );
        out.assert_success();
        assert!(
            out.stdout_text().contains("COPY 140000"),
            "{}",
            out.stdout_text()
        );
    }
    let same = psql(
        &direct,
        &[
            "-At",
            "-c",
            "SELECT (SELECT md5(string_agg(id || ':' || line, ',' ORDER BY id)) FROM big_duet)
                  = (SELECT md5(string_agg(id || ':' || line, ',' ORDER BY id)) FROM big_direct)",
        ],
        None,
    );
    same.assert_success();
    assert_eq!(
        same.stdout_text().trim(),
        "t",
        "rows copied in through duet differ from direct"
    );

    // duet's byte counters saw all of it (protocol framing only adds to the payload).
    let status = duet.status();
    let counted = |pointer: &str| {
        status
            .pointer(pointer)
            .and_then(serde_json::Value::as_u64)
            .unwrap_or_else(|| panic!("status has no {pointer}: {status}"))
    };
    assert!(
        counted("/bytes/server_to_client") >= via_duet.stdout.len() as u64,
        "server_to_client counts fewer bytes than the result psql printed: {status}"
    );
    assert!(
        counted("/bytes/client_to_server") >= data.len() as u64,
        "client_to_server counts fewer bytes than the COPY data sent: {status}"
    );
}

#[test]
fn psql_large_objects_use_the_function_call_protocol() {
    let Some(backend) = backend_or_skip("psql_large_objects_use_the_function_call_protocol") else {
        return;
    };
    let db = TestDatabase::create(&backend, "psql_large_objects");
    let duet = DuetProcess::start(&backend.url(db.name()), &[]);
    let through = duet_target(&backend, &duet, db.name());
    let files = TempDir::new("psql-lo");
    // libpq's lo_import/lo_export (psql's \lo_import, \lo_export) run over the fast-path
    // FunctionCall protocol message ('F'), in 8 kB+ chunks.
    let original: Vec<u8> = (0..3 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let input = files.join("blob.in");
    let output = files.join("blob.out");
    std::fs::write(&input, &original).expect("writing the blob");
    let script = format!(
        "\\set ON_ERROR_STOP on\nBEGIN;\n\\lo_import '{}'\n\\set blob :LASTOID\n\\lo_export :blob '{}'\nSELECT length(lo_get(:blob)) AS stored;\nCOMMIT;\n",
        input.display(),
        output.display()
    );
    let out = psql(&through, &["-At"], Some(script.as_bytes()));
    out.assert_success();
    assert!(
        out.stdout_text()
            .lines()
            .any(|line| line == (3 * 1024 * 1024).to_string()),
        "the server did not store 3 MiB:\n{}",
        out.stdout_text()
    );
    let exported = std::fs::read(&output).expect("reading the exported blob");
    assert_eq!(exported.len(), original.len());
    assert!(
        exported == original,
        "large object exported through duet differs from the imported file"
    );
}
