//! Authentication abuse, for real, through the `muxql` binary in front of the test PostgreSQL:
//! ten thousand wrong SCRAM proofs and unknown users, startup parameters of clients that never
//! authenticate, random cancel keys. None of it reaches a server or another client.

mod common;
mod proc;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use proc::Muxql;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Wrong logins tried.
const WRONG_LOGINS: usize = 10_000;
/// Connections trying them at once.
const ATTACKERS: usize = 50;

fn start() -> Muxql {
    let pg = common::pg();
    Muxql::start(&[
        "--upstream",
        &pg.url(&pg.scram_user),
        "--pool-size",
        "2",
        "--log-level",
        "error",
    ])
}

fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// Reads one backend message.
async fn read_msg(c: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut head = [0u8; 5];
    tokio::time::timeout(Duration::from_secs(10), c.read_exact(&mut head))
        .await
        .expect("an answer in time")
        .expect("read");
    let len = u32::from_be_bytes(head[1..5].try_into().expect("4")) as usize;
    let mut body = vec![0u8; len - 4];
    c.read_exact(&mut body).await.expect("read body");
    (head[0], body)
}

fn sqlstate(body: &[u8]) -> String {
    body.split(|&b| b == 0)
        .find_map(|f| f.strip_prefix(b"C"))
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .unwrap_or_default()
}

/// One SCRAM login as `user` with a random (wrong) proof; returns the SQLSTATE it ends with.
async fn wrong_scram_login(port: u16, user: &str, extra: &[(&str, &str)]) -> String {
    let mut c = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    c.write_all(&common::pg_startup_packet(user, extra))
        .await
        .expect("startup");
    let (tag, body) = read_msg(&mut c).await;
    if tag == b'E' {
        return sqlstate(&body);
    }
    assert_eq!((tag, &body[..4]), (b'R', &10u32.to_be_bytes()[..]), "SASL");
    let client_nonce = format!("{:024x}", rand_u128());
    let first = format!("n,,n=,r={client_nonce}");
    let mut initial = b"SCRAM-SHA-256\0".to_vec();
    initial.extend_from_slice(&(first.len() as u32).to_be_bytes());
    initial.extend_from_slice(first.as_bytes());
    c.write_all(&msg(b'p', &initial))
        .await
        .expect("client-first");
    let (tag, body) = read_msg(&mut c).await;
    if tag == b'E' {
        return sqlstate(&body);
    }
    assert_eq!(&body[..4], &11u32.to_be_bytes(), "SASLContinue");
    let server_first = String::from_utf8_lossy(&body[4..]).into_owned();
    let nonce = server_first
        .split(',')
        .find_map(|a| a.strip_prefix("r="))
        .expect("server nonce");
    let proof = base64::engine::general_purpose::STANDARD.encode(rand_u128().to_be_bytes());
    let last = format!("c=biws,r={nonce},p={proof}{proof}");
    c.write_all(&msg(b'p', last.as_bytes()))
        .await
        .expect("client-final");
    let (tag, body) = read_msg(&mut c).await;
    assert_eq!(tag, b'E', "a wrong proof is refused");
    sqlstate(&body)
}

/// Random enough for nonces and keys that must not collide with real ones.
fn rand_u128() -> u128 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let a = RandomState::new().build_hasher().finish();
    let b = RandomState::new().build_hasher().finish();
    (u128::from(a) << 64) | u128::from(b)
}

#[tokio::test]
async fn ten_thousand_wrong_logins_reach_nobody_and_change_nothing() {
    let m = start();
    let pg = common::pg();
    let mut via = pg.clone();
    via.port = m.port;
    let cfg = via.config(&pg.scram_user);
    // A bystander works all along.
    let stop = Arc::new(AtomicBool::new(false));
    let bystander = {
        let (cfg, stop) = (cfg.clone(), stop.clone());
        tokio::spawn(async move {
            let client = common::pg_connect(&cfg).await.expect("bystander");
            let mut n = 0i64;
            while !stop.load(Ordering::Relaxed) {
                let v: i64 = client
                    .query_one("SELECT $1::bigint + 1", &[&n])
                    .await
                    .expect("bystander query")
                    .get(0);
                assert_eq!(v, n + 1);
                n += 1;
            }
            n
        })
    };
    let evil = [
        ("application_name", "evil_app"),
        ("options", "-c search_path=evil"),
    ];
    let mut attackers = Vec::new();
    for a in 0..ATTACKERS {
        let (port, user) = (m.port, pg.scram_user.clone());
        attackers.push(tokio::spawn(async move {
            let mut codes = std::collections::BTreeMap::<String, usize>::new();
            for i in 0..WRONG_LOGINS / ATTACKERS {
                let who = if (a + i) % 5 == 0 {
                    "no_such_user".to_string()
                } else {
                    user.clone()
                };
                let code = wrong_scram_login(port, &who, &evil).await;
                *codes.entry(code).or_default() += 1;
            }
            codes
        }));
    }
    let mut codes = std::collections::BTreeMap::<String, usize>::new();
    for a in attackers {
        for (k, v) in a.await.expect("attacker") {
            *codes.entry(k).or_default() += v;
        }
    }
    assert_eq!(
        codes.get("28P01").copied(),
        Some(WRONG_LOGINS),
        "every wrong login, known user or not, fails the same way: {codes:?}"
    );
    stop.store(true, Ordering::Relaxed);
    let ran = bystander.await.expect("the bystander saw no error");
    assert!(ran > 0);
    // The right password still works: no lockout.
    let client = common::pg_connect(&cfg).await.expect("a real login after");
    let sp: String = client
        .query_one("SHOW search_path", &[])
        .await
        .expect("show")
        .get(0);
    assert!(!sp.contains("evil"), "{sp}");
    // No server ever saw an unauthenticated client's parameters.
    let admin = common::pg_connect(&pg.config(&pg.superuser))
        .await
        .expect("direct superuser connection");
    let evil_backends: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'evil_app'",
            &[],
        )
        .await
        .expect("pg_stat_activity")
        .get(0);
    assert_eq!(evil_backends, 0);
    let auth_errors = m
        .metric("muxql_client_errors_total{kind=\"auth\"}")
        .expect("metric");
    assert!(auth_errors >= WRONG_LOGINS as f64, "{auth_errors}");
    eprintln!("{WRONG_LOGINS} wrong logins {codes:?}; bystander ran {ran} queries meanwhile");
}

#[tokio::test]
async fn random_cancel_keys_cancel_nothing() {
    let m = start();
    let pg = common::pg();
    let mut via = pg.clone();
    via.port = m.port;
    let client = common::pg_connect(&via.config(&pg.scram_user))
        .await
        .expect("connect");
    let sleeper = tokio::spawn(async move {
        client
            .query_one("SELECT pg_sleep(1.5)::text", &[])
            .await
            .map(|_| ())
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..2_000 {
        let mut c = TcpStream::connect(("127.0.0.1", m.port))
            .await
            .expect("connect");
        let r = rand_u128();
        let mut cancel = 16u32.to_be_bytes().to_vec();
        cancel.extend_from_slice(&80877102u32.to_be_bytes());
        cancel.extend_from_slice(&(r as u32).to_be_bytes());
        cancel.extend_from_slice(&((r >> 32) as u32).to_be_bytes());
        c.write_all(&cancel).await.expect("cancel request");
        let mut rest = Vec::new();
        let _ = c.read_to_end(&mut rest).await;
        assert!(rest.is_empty(), "a cancel request gets no answer");
    }
    sleeper
        .await
        .expect("task")
        .expect("the query ran to its end, not cancelled");
}
