//! TLS from the `muxql` binary to the test PostgreSQL and MariaDB (`?sslmode=...` on the
//! upstream URL): users the servers admit only over TLS (and with a client certificate) get
//! in, the server says the session is encrypted, and a certificate from the wrong CA, or a
//! server without TLS where TLS is required, fails the login with an error the client sees.

mod common;
mod proc;

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use proc::Muxql;

/// `?sslmode=MODE&sslrootcert=CA[&sslcert=..&sslkey=..]`, percent-encoded where needed.
fn tls_query(mode: &str, ca: &std::path::Path, client_cert: bool) -> String {
    let enc = |p: &std::path::Path| p.display().to_string().replace('%', "%25");
    let tls = common::tls();
    let mut q = format!("?sslmode={mode}&sslrootcert={}", enc(ca));
    if client_cert {
        q.push_str(&format!(
            "&sslcert={}&sslkey={}",
            enc(&tls.client_cert),
            enc(&tls.client_key)
        ));
    }
    q
}

fn start(args: &[&str]) -> Muxql {
    let mut all = vec![
        "--log-level",
        "warn",
        "--connect-timeout",
        "5s",
        "--wait-timeout",
        "5s",
    ];
    all.extend_from_slice(args);
    Muxql::start(&all)
}

/// `ssl` and `client_dn` of this backend in `pg_stat_ssl`, asked through muxql as `user`.
async fn pg_ssl(m: &Muxql, user: &str) -> Result<(bool, Option<String>), tokio_postgres::Error> {
    let mut via = common::pg().clone();
    via.port = m.port;
    let client = common::pg_connect(&via.config(user)).await?;
    let row = client
        .query_one(
            "SELECT ssl, client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await?;
    Ok((row.get(0), row.get(1)))
}

#[tokio::test]
async fn pg_verify_full_reaches_a_tls_only_user() {
    let pg = common::pg();
    let tls = common::tls();
    let url = format!(
        "{}{}",
        pg.url(&tls.pg_user),
        tls_query("verify-full", &tls.ca, false)
    );
    let m = start(&["--upstream", &url]);
    let (ssl, _) = pg_ssl(&m, &tls.pg_user).await.expect("query over TLS");
    assert!(ssl, "the server reports the session as TLS");
    assert_eq!(
        m.metric("muxql_tls_handshakes_total{side=\"upstream\",result=\"ok\"}"),
        Some(1.0)
    );
}

#[tokio::test]
async fn pg_client_certificate_is_presented() {
    let pg = common::pg();
    let tls = common::tls();
    let url = format!(
        "{}{}",
        pg.url(&tls.pg_cert_user),
        tls_query("verify-ca", &tls.ca, true)
    );
    let m = start(&["--upstream", &url]);
    let (ssl, dn) = pg_ssl(&m, &tls.pg_cert_user)
        .await
        .expect("query with a client certificate");
    assert!(ssl);
    assert_eq!(dn.as_deref(), Some(&*format!("/CN={}", tls.pg_cert_user)));
}

#[tokio::test]
async fn pg_require_encrypts_without_a_ca() {
    let pg = common::pg();
    let tls = common::tls();
    let m = start(&[
        "--upstream",
        &format!("{}?sslmode=require", pg.url(&tls.pg_user)),
    ]);
    let (ssl, _) = pg_ssl(&m, &tls.pg_user).await.expect("query over TLS");
    assert!(ssl);
}

/// The client's login fails with an error (not a hang) within the wait timeout.
async fn pg_fails(m: &Muxql, user: &str) -> String {
    let started = Instant::now();
    let err = pg_ssl(m, user).await.expect_err("the login must fail");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "failed after {:?}",
        started.elapsed()
    );
    match err.as_db_error() {
        Some(db) => format!("{} {}", db.code().code(), db.message()),
        None => err.to_string(),
    }
}

#[tokio::test]
async fn pg_a_certificate_from_another_ca_is_refused() {
    let pg = common::pg();
    let tls = common::tls();
    let url = format!(
        "{}{}",
        pg.url(&tls.pg_user),
        tls_query("verify-full", &tls.wrong_ca, false)
    );
    let m = start(&["--upstream", &url]);
    let err = pg_fails(&m, &tls.pg_user).await;
    assert!(
        err.starts_with("08006 could not connect to upstream"),
        "{err}"
    );
    assert!(
        m.metric("muxql_tls_handshakes_total{side=\"upstream\",result=\"failed\"}")
            .unwrap_or(0.0)
            >= 1.0
    );
    assert_eq!(
        m.metric("muxql_tls_handshakes_total{side=\"upstream\",result=\"ok\"}"),
        Some(0.0)
    );
}

#[tokio::test]
async fn pg_without_tls_a_tls_only_user_is_refused_by_the_server() {
    let pg = common::pg();
    let tls = common::tls();
    let m = start(&["--upstream", &pg.url(&tls.pg_user)]);
    let err = pg_fails(&m, &tls.pg_user).await;
    // No silent TLS: the server's own refusal reaches the client.
    assert!(err.contains("no encryption"), "{err}");
}

/// `Ssl_cipher` of this MariaDB session, asked through muxql as `user`.
async fn my_cipher(port: u16, user: &str) -> Result<String, mysql_async::Error> {
    let my = common::mariadb();
    let opts = mysql_async::OptsBuilder::from_opts(my.opts(user)).tcp_port(port);
    let mut conn = mysql_async::Conn::new(opts).await?;
    let row: Option<(String, String)> = conn
        .query_first("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        .await?;
    conn.disconnect().await?;
    Ok(row.map(|(_, v)| v).unwrap_or_default())
}

fn start_mysql(url: &str) -> (Muxql, u16) {
    let port = common::free_port();
    let listen = format!("127.0.0.1:{port}");
    let m = start(&["--listen-mysql", &listen, "--upstream", url]);
    (m, port)
}

#[tokio::test]
async fn mysql_verify_identity_reaches_a_tls_only_user_with_and_without_a_certificate() {
    let my = common::mariadb();
    let tls = common::tls();
    for (user, cert) in [(&tls.my_user, false), (&tls.my_cert_user, true)] {
        let url = format!(
            "{}{}",
            my.url(user),
            tls_query("verify-full", &tls.ca, cert)
        );
        let (_m, port) = start_mysql(&url);
        let cipher = my_cipher(port, user).await.expect("query over TLS");
        assert!(!cipher.is_empty(), "{user}: the session is encrypted");
    }
}

#[tokio::test]
async fn mysql_a_certificate_from_another_ca_is_refused() {
    let my = common::mariadb();
    let tls = common::tls();
    let url = format!(
        "{}{}",
        my.url(&tls.my_user),
        tls_query("verify-full", &tls.wrong_ca, false)
    );
    let (m, port) = start_mysql(&url);
    let started = Instant::now();
    assert!(my_cipher(port, &tls.my_user).await.is_err());
    assert!(started.elapsed() < Duration::from_secs(15));
    assert!(
        m.metric("muxql_tls_handshakes_total{side=\"upstream\",result=\"failed\"}")
            .unwrap_or(0.0)
            >= 1.0
    );
}
