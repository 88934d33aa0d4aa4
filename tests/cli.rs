//! The `muxql` command's flags, config errors, exit codes, metrics, SIGTERM and SIGHUP.

mod proc;

use std::time::Duration;

use proc::{free_port, run, Muxql};

/// An upstream nobody listens on: the engine connects only when a client asks.
fn idle_upstream() -> String {
    format!("postgres://app:pw@127.0.0.1:{}/appdb", free_port())
}

#[test]
fn help_lists_the_flags() {
    let (status, _) = run(&["--help"]);
    assert!(status.success());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_muxql"))
        .arg("--help")
        .output()
        .expect("run muxql");
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--listen-pg",
        "--upstream",
        "--pool-size",
        "--pool-mode",
        "--config",
        "--metrics",
        "--auth",
        "--user",
        "--shutdown-timeout",
        "--log-level",
        "--pin-policy",
    ] {
        assert!(text.contains(flag), "--help lacks {flag}");
    }
}

#[test]
fn config_errors_exit_2_with_one_line() {
    let up = idle_upstream();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--upstream", &up], "no listen address"),
        (vec!["--listen-pg", "127.0.0.1:1"], "no upstream"),
        (
            vec![
                "--listen-pg",
                "127.0.0.1:1",
                "--upstream",
                "postgres://u:hunter2@h",
            ],
            "missing /DATABASE",
        ),
        (
            vec!["--listen-pg", "nowhere", "--upstream", &up],
            "invalid listen address",
        ),
        (
            vec![
                "--listen-pg",
                "127.0.0.1:1",
                "--upstream",
                &up,
                "--pool-mode",
                "statement",
            ],
            "invalid pool mode",
        ),
        (
            vec![
                "--listen-pg",
                "127.0.0.1:1",
                "--upstream",
                &up,
                "--auth",
                "kerberos",
            ],
            "invalid auth",
        ),
        (
            vec![
                "--listen-pg",
                "127.0.0.1:1",
                "--upstream",
                &up,
                "--metrics",
                "x",
            ],
            "invalid metrics address",
        ),
        (
            vec!["--config", "/nonexistent/muxql.toml"],
            "cannot read config file",
        ),
    ];
    for (args, want) in cases {
        let (status, stderr) = run(&args);
        assert_eq!(status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(want), "{args:?}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
        assert!(!stderr.contains("hunter2"), "password leaked: {stderr}");
    }
}

#[test]
fn bad_toml_names_file_and_problem() {
    let dir = std::env::temp_dir().join(format!("muxql-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let path = dir.join("bad.toml");
    std::fs::write(&path, "listen_pg = [\"127.0.0.1:1\"]\npool_szie = 3\n").expect("write");
    let (status, stderr) = run(&["--config", path.to_str().expect("utf-8 path")]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("bad.toml") && stderr.contains("pool_szie"),
        "{stderr}"
    );
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unknown_flag_exits_2() {
    let (status, stderr) = run(&["--frobnicate"]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--frobnicate"), "{stderr}");
}

#[test]
fn example_config_starts() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/muxql.toml");
    let sock = std::env::temp_dir().join(format!("muxql-ex-{}.sock", std::process::id()));
    let unix = format!("unix:{}", sock.display());
    let m = Muxql::start(&["--config", example, "--listen-pg", &unix]);
    assert!(m
        .http_get("/metrics")
        .contains("muxql_clients{route=\"app\",user=\"app\",protocol=\"postgres\"} 0"));
    assert!(m.terminate(Duration::from_secs(10)).success());
    assert!(!sock.exists(), "unix socket file left behind");
}

#[test]
fn metrics_endpoint_serves_prometheus_text() {
    let up = idle_upstream();
    let m = Muxql::start(&["--upstream", &up]);
    let resp = m.http_get("/metrics");
    assert!(resp.starts_with("HTTP/1.1 200 OK\r\n"), "{resp}");
    assert!(
        resp.contains("Content-Type: text/plain; version=0.0.4"),
        "{resp}"
    );
    for series in [
        "# TYPE muxql_clients gauge",
        "muxql_clients{route=\"appdb\",user=\"app\",protocol=\"postgres\"} 0",
        "muxql_upstreams{route=\"appdb\",user=\"app\",protocol=\"postgres\"} 0",
        "# TYPE muxql_transactions_total counter",
        "muxql_queries_total{route=\"appdb\",user=\"app\",protocol=\"postgres\"} 0",
        "muxql_clients_logging_in 0",
    ] {
        assert!(resp.contains(series), "missing {series}: {resp}");
    }
    assert!(m.http_get("/other").starts_with("HTTP/1.1 404"));
    drop(m);
}

#[test]
fn sigterm_exits_0() {
    let up = idle_upstream();
    let m = Muxql::start(&["--upstream", &up, "--shutdown-timeout", "5s"]);
    let port = m.port;
    let _client = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let status = m.terminate(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0));
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[test]
fn sighup_reloads_the_config_file_and_keeps_it_when_broken() {
    let dir = std::env::temp_dir().join(format!("muxql-hup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("muxql.toml");
    let write = |extra: &str| {
        let text = format!("upstreams = [\"{}\"]\n{extra}", idle_upstream());
        std::fs::write(&file, text).unwrap();
    };
    write("");
    let m = Muxql::start(&["--config", file.to_str().unwrap()]);
    let added = "muxql_clients{route=\"reports\",user=\"app\",protocol=\"postgres\"} 0";
    assert!(!m.http_get("/metrics").contains(added));
    write(concat!(
        "[[routes]]\ndatabase = \"reports\"\nclient_user = \"app\"\n",
        "target = \"127.0.0.1:5432\"\nupstream_user = \"app\"\nupstream_password = \"pw\"\n"
    ));
    m.signal("HUP");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !m.http_get("/metrics").contains(added) {
        assert!(
            std::time::Instant::now() < deadline,
            "SIGHUP did not reload"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // A file that does not parse: the running configuration stays, the process too.
    std::fs::write(&file, "pool_size = \"many\"\n").unwrap();
    m.signal("HUP");
    std::thread::sleep(Duration::from_millis(300));
    assert!(m.http_get("/metrics").contains(added));
    assert!(m.terminate(Duration::from_secs(10)).success());
    std::fs::remove_dir_all(&dir).unwrap();
}
