//! Proves the test harness: each server is reachable over TCP (and its unix socket) and every
//! configured authentication method completes a login, while a wrong password is refused.

mod common;

use mysql_async::prelude::Queryable;
use tokio_postgres::error::SqlState;

/// Logs in to PostgreSQL as `user` with `password` over TCP and runs `SELECT 1`.
async fn pg_login(user: &str, password: &str) -> Result<i32, tokio_postgres::Error> {
    let mut config = common::pg().config(user);
    config.password(password);
    let client = common::pg_connect(&config).await?;
    let row = client.query_one("SELECT 1", &[]).await?;
    Ok(row.get(0))
}

/// Asserts that logging in as `user` with a wrong password fails with SQLSTATE 28P01.
async fn assert_pg_wrong_password_fails(user: &str) {
    let err = pg_login(user, "not_the_password")
        .await
        .expect_err("login with a wrong password must fail");
    assert_eq!(
        err.code(),
        Some(&SqlState::INVALID_PASSWORD),
        "unexpected error for {user}: {err}"
    );
}

/// The method pg_hba.conf assigns to `user` for host connections, and the stored hash prefix.
async fn pg_auth_setup(user: &str) -> (String, String) {
    let pg = common::pg();
    let admin = common::pg_connect(&pg.config(&pg.superuser))
        .await
        .expect("superuser login over TCP (trust)");
    let method: String = admin
        .query_one(
            "SELECT auth_method FROM pg_hba_file_rules \
             WHERE type = 'host' AND $1 = ANY(user_name) ORDER BY line_number LIMIT 1",
            &[&user],
        )
        .await
        .expect("pg_hba rule for user")
        .get(0);
    let secret: String = admin
        .query_one(
            "SELECT coalesce(rolpassword, '') FROM pg_authid WHERE rolname = $1",
            &[&user],
        )
        .await
        .expect("pg_authid row for user")
        .get(0);
    (method, secret)
}

#[tokio::test]
async fn pg_trust_login() {
    let pg = common::pg();
    assert_eq!(pg.host, "127.0.0.1");
    assert_eq!(
        pg_login(&pg.trust_user, &pg.password)
            .await
            .expect("trust login"),
        1
    );
    // trust never asks for a password, so any password works.
    assert_eq!(
        pg_login(&pg.trust_user, "anything")
            .await
            .expect("trust login"),
        1
    );
    let (method, _) = pg_auth_setup(&pg.trust_user).await;
    assert_eq!(method, "trust");
}

#[tokio::test]
async fn pg_md5_login() {
    let pg = common::pg();
    assert_eq!(
        pg_login(&pg.md5_user, &pg.password)
            .await
            .expect("md5 login"),
        1
    );
    assert_pg_wrong_password_fails(&pg.md5_user).await;
    let (method, secret) = pg_auth_setup(&pg.md5_user).await;
    assert_eq!(method, "md5");
    // An md5 rule with a SCRAM secret would silently do SCRAM instead.
    assert!(
        secret.starts_with("md5"),
        "md5 user must have an MD5 hash, got {secret:?}"
    );
}

#[tokio::test]
async fn pg_scram_login() {
    let pg = common::pg();
    assert_eq!(
        pg_login(&pg.scram_user, &pg.password)
            .await
            .expect("scram login"),
        1
    );
    assert_pg_wrong_password_fails(&pg.scram_user).await;
    let (method, secret) = pg_auth_setup(&pg.scram_user).await;
    assert_eq!(method, "scram-sha-256");
    assert!(secret.starts_with("SCRAM-SHA-256$"), "got {secret:?}");
}

#[tokio::test]
async fn pg_unix_socket_login() {
    let pg = common::pg();
    assert!(
        pg.socket_path().exists(),
        "{} missing",
        pg.socket_path().display()
    );
    let mut config = pg.config(&pg.scram_user);
    config.host_path(&pg.socket_dir);
    let client = common::pg_connect(&config)
        .await
        .expect("login over the unix socket");
    let row = client.query_one("SELECT 1", &[]).await.expect("SELECT 1");
    assert_eq!(row.get::<_, i32>(0), 1);
}

/// Tables one test user creates are readable and writable by the other two.
#[tokio::test]
async fn pg_database_is_shared_by_test_users() {
    let pg = common::pg();
    let owner = common::pg_connect(&pg.config(&pg.md5_user))
        .await
        .expect("md5 login");
    owner
        .batch_execute(
            "DROP TABLE IF EXISTS harness_shared; \
             CREATE TABLE harness_shared (id serial PRIMARY KEY, v text)",
        )
        .await
        .expect("md5 user creates a table in schema public");
    let scram = common::pg_connect(&pg.config(&pg.scram_user))
        .await
        .expect("scram login");
    scram
        .execute("INSERT INTO harness_shared (v) VALUES ('x')", &[])
        .await
        .expect("scram user writes the md5 user's table");
    let trust = common::pg_connect(&pg.config(&pg.trust_user))
        .await
        .expect("trust login");
    let n: i64 = trust
        .query_one("SELECT count(*) FROM harness_shared", &[])
        .await
        .expect("trust user reads the md5 user's table")
        .get(0);
    assert_eq!(n, 1);
    owner
        .batch_execute("DROP TABLE harness_shared")
        .await
        .expect("drop");
}

#[tokio::test]
async fn pg_tools_are_present() {
    let pg = common::pg();
    for tool in ["psql", "pgbench", "pg_ctl", "pg_isready"] {
        assert!(
            pg.bin_path(tool).exists(),
            "{tool} missing in {}; run scripts/setup",
            pg.bin.display()
        );
    }
    let out = pg
        .psql(&pg.md5_user)
        .args(["-t", "-A", "-c", "SELECT current_user"])
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), pg.md5_user);
}

/// Logs in to MariaDB as `user` with `password` over TCP and runs `SELECT 1`.
async fn my_login(user: &str, password: &str) -> Result<i64, mysql_async::Error> {
    let opts = common::mariadb().opts_with_password(user, password);
    let mut conn = mysql_async::Conn::new(opts).await?;
    let one: Option<i64> = conn.query_first("SELECT 1").await?;
    conn.disconnect().await?;
    Ok(one.unwrap_or_default())
}

/// Asserts that logging in as `user` with a wrong password fails with ER_ACCESS_DENIED (1045).
async fn assert_my_wrong_password_fails(user: &str) {
    match my_login(user, "not_the_password").await {
        Err(mysql_async::Error::Server(e)) => assert_eq!(e.code, 1045, "unexpected error: {e}"),
        Err(e) => panic!("expected ER_ACCESS_DENIED for {user}, got {e}"),
        Ok(_) => panic!("login as {user} with a wrong password must fail"),
    }
}

/// The authentication plugin MariaDB stores for `user`@'%'.
async fn my_plugin(user: &str) -> String {
    let my = common::mariadb();
    let mut root = mysql_async::Conn::new(my.opts(&my.root_user))
        .await
        .expect("root login over TCP");
    let plugin: Option<String> = root
        .exec_first(
            "SELECT plugin FROM mysql.user WHERE user = ? AND host = '%'",
            (user,),
        )
        .await
        .expect("query mysql.user");
    root.disconnect().await.expect("disconnect");
    plugin.unwrap_or_else(|| panic!("no user {user}@'%'"))
}

#[tokio::test]
async fn mariadb_native_password_login() {
    let my = common::mariadb();
    assert_eq!(my.host, "127.0.0.1");
    assert_eq!(
        my_login(&my.user, &my.password)
            .await
            .expect("native login"),
        1
    );
    assert_my_wrong_password_fails(&my.user).await;
    assert_eq!(my_plugin(&my.user).await, "mysql_native_password");
}

#[tokio::test]
async fn mariadb_ed25519_login() {
    let my = common::mariadb();
    let user = my.require_ed25519_user();
    assert_eq!(
        my_login(user, &my.password).await.expect("ed25519 login"),
        1
    );
    assert_my_wrong_password_fails(user).await;
    assert_eq!(my_plugin(user).await, "ed25519");
}

#[tokio::test]
async fn mariadb_server_settings_and_socket() {
    let my = common::mariadb();
    let opts = mysql_async::OptsBuilder::default()
        .socket(Some(my.socket.to_string_lossy().into_owned()))
        .user(Some(&my.user))
        .pass(Some(&my.password))
        .db_name(Some(&my.db));
    let mut conn = mysql_async::Conn::new(opts)
        .await
        .expect("login over the unix socket");
    let (max_conn, max_packet): (u64, u64) = conn
        .query_first("SELECT @@max_connections, @@max_allowed_packet")
        .await
        .expect("read settings")
        .expect("one row");
    assert!(max_conn >= 1000, "max_connections = {max_conn}");
    assert_eq!(max_packet, 64 << 20);
    let table = common::unique_name("harness_t");
    conn.query_drop(format!("CREATE TABLE {table} (id INT PRIMARY KEY)"))
        .await
        .expect("native user creates tables in the muxql database");
    conn.query_drop(format!("DROP TABLE {table}"))
        .await
        .expect("drop");
    conn.disconnect().await.expect("disconnect");
}

#[test]
fn mariadb_cli_login() {
    let my = common::mariadb();
    let out = my
        .cli(&my.user)
        .args(["-N", "-e", "SELECT current_user()"])
        .output()
        .expect("run the mariadb client; run scripts/setup");
    assert!(
        out.status.success(),
        "mariadb failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("{}@%", my.user)
    );
}

#[test]
fn free_port_is_bindable() {
    let port = common::free_port();
    assert_ne!(port, 0);
    std::net::TcpListener::bind(("127.0.0.1", port)).expect("the free port can be bound");
    assert_ne!(common::unique_name("x"), common::unique_name("x"));
}
