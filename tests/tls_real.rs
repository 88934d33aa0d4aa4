//! Clients over TLS to the `muxql` binary (`--tls-cert`, `--tls-key`, `--client-tls`): psql
//! and the mariadb client, against a throwaway CA made here.

mod common;
mod proc;

use std::path::{Path, PathBuf};
use std::process::Output;

use proc::Muxql;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

/// A CA and a server certificate it signed for 127.0.0.1 and localhost, as PEM files in `dir`:
/// (ca, cert, key).
fn make_certs(dir: &Path, ca_name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, ca_name);
    let ca = ca_params.self_signed(&ca_key).expect("CA");
    let key = KeyPair::generate().expect("server key");
    let params = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .expect("server params");
    let cert = params.signed_by(&key, &ca, &ca_key).expect("server cert");
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write PEM");
        path
    };
    (
        write(&format!("{ca_name}.pem"), ca.pem()),
        write(&format!("{ca_name}-server.pem"), cert.pem()),
        write(&format!("{ca_name}-server.key"), key.serialize_pem()),
    )
}

fn scratch_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(common::unique_name("muxql_tls"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// psql through muxql with the given sslmode (and root certificate) and channel_binding,
/// running `\conninfo` and a query.
fn psql(m: &Muxql, sslmode: &str, root: Option<&Path>, binding: &str) -> Output {
    let pg = common::pg();
    let mut via = pg.clone();
    via.port = m.port;
    let mut cmd = via.psql(&pg.scram_user);
    cmd.env("PGSSLMODE", sslmode)
        .env("PGCHANNELBINDING", binding)
        .args(["-At", "-c", "\\conninfo", "-c", "SELECT 40 + 2"]);
    if let Some(root) = root {
        cmd.env("PGSSLROOTCERT", root);
    }
    cmd.output().expect("run psql")
}

#[test]
fn psql_connects_over_tls_and_verifies_the_certificate() {
    let dir = scratch_dir();
    let (ca, cert, key) = make_certs(&dir, "muxql-test-ca");
    let (other_ca, _, _) = make_certs(&dir, "another-ca");
    let pg = common::pg();
    let m = Muxql::start(&[
        "--upstream",
        &pg.url(&pg.scram_user),
        "--tls-cert",
        cert.to_str().expect("path"),
        "--tls-key",
        key.to_str().expect("path"),
        "--client-tls",
        "require",
        "--log-level",
        "warn",
    ]);
    for (sslmode, root) in [("require", None), ("verify-full", Some(ca.as_path()))] {
        let out = psql(&m, sslmode, root, "prefer");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{sslmode}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("SSL connection"), "{sslmode}: {stdout}");
        assert!(stdout.trim_end().ends_with("42"), "{sslmode}: {stdout}");
    }
    // SCRAM-SHA-256-PLUS: the proof is bound to muxql's certificate.
    let out = psql(&m, "require", None, "require");
    assert!(
        out.status.success(),
        "channel_binding=require: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = psql(&m, "verify-full", Some(&other_ca), "prefer");
    assert!(
        !out.status.success(),
        "a certificate from another CA is refused"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("certificate verify failed"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ok = m
        .metric("muxql_tls_handshakes_total{side=\"client\",result=\"ok\"}")
        .expect("metric");
    let failed = m
        .metric("muxql_tls_handshakes_total{side=\"client\",result=\"failed\"}")
        .expect("metric");
    assert!(
        ok >= 3.0 && failed >= 1.0,
        "handshakes: {ok} ok, {failed} failed"
    );
    let out = psql(&m, "disable", None, "prefer");
    assert!(!out.status.success(), "plaintext is refused");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("muxql requires TLS"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// The mariadb client through muxql with `--ssl` and the given CA (verifying the server's
/// certificate), running `status` (which names the cipher) and a query.
fn mariadb(port: u16, ssl: bool, ca: Option<&Path>) -> Output {
    let my = common::mariadb();
    let mut via = my.clone();
    via.port = port;
    let mut cmd = via.cli(&my.user);
    if ssl {
        cmd.arg("--ssl");
    } else {
        cmd.arg("--skip-ssl");
    }
    if let Some(ca) = ca {
        cmd.arg(format!("--ssl-ca={}", ca.display()))
            .arg("--ssl-verify-server-cert");
    }
    cmd.args(["-e", "status; SELECT 40 + 2"])
        .output()
        .expect("run mariadb")
}

#[test]
fn the_mariadb_client_connects_over_tls() {
    let dir = scratch_dir();
    let (ca, cert, key) = make_certs(&dir, "muxql-test-ca");
    let my = common::mariadb();
    let port = proc::free_port();
    let listen = format!("127.0.0.1:{port}");
    let _m = Muxql::start(&[
        "--listen-mysql",
        &listen,
        "--upstream",
        &my.url(&my.user),
        "--tls-cert",
        cert.to_str().expect("path"),
        "--tls-key",
        key.to_str().expect("path"),
        "--client-tls",
        "require",
        "--log-level",
        "warn",
    ]);
    let out = mariadb(port, true, Some(&ca));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("Cipher in use is"), "{stdout}");
    assert!(stdout.trim_end().ends_with("42"), "{stdout}");
    let out = mariadb(port, false, None);
    assert!(!out.status.success(), "plaintext is refused");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("insecure transport"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// PostgreSQL 17's direct TLS (a TLS handshake instead of an SSLRequest, ALPN
/// `postgresql`), spoken by a raw client: the login and a query go through.
#[test]
fn direct_tls_with_alpn_postgresql() {
    use bytes::{Bytes, BytesMut};
    use muxql::pg::backend::BackendMessage;
    use muxql::pg::frame::{split_frame, Direction};
    use muxql::pg::frontend::FrontendMessage;
    use muxql::pg::startup::{ProtocolVersion, Startup, StartupRequest, PROTOCOL_3_0};
    use std::io::{Read, Write};
    use std::sync::Arc;

    let dir = scratch_dir();
    let (ca, cert, key) = make_certs(&dir, "direct-ca");
    let pg = common::pg();
    let m = Muxql::start(&[
        "--upstream",
        &pg.url(&pg.scram_user),
        "--auth",
        "trust",
        "--tls-cert",
        cert.to_str().expect("path"),
        "--tls-key",
        key.to_str().expect("path"),
        "--log-level",
        "warn",
    ]);
    let mut roots = rustls::RootCertStore::empty();
    let ca_pem = std::fs::read(&ca).expect("read CA");
    for der in rustls_pemfile_certs(&ca_pem) {
        roots.add(der).expect("root");
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"postgresql".to_vec()];
    let tls = rustls::ClientConnection::new(Arc::new(config), "localhost".try_into().unwrap())
        .expect("client");
    let tcp = std::net::TcpStream::connect(("127.0.0.1", m.port)).expect("connect");
    let mut stream = rustls::StreamOwned::new(tls, tcp);
    let mut out = BytesMut::new();
    StartupRequest::Startup(Startup {
        version: ProtocolVersion(PROTOCOL_3_0),
        params: vec![
            (
                Bytes::from_static(b"user"),
                Bytes::from(pg.scram_user.clone()),
            ),
            (Bytes::from_static(b"database"), Bytes::from(pg.db.clone())),
        ],
    })
    .encode(&mut out)
    .expect("startup");
    FrontendMessage::Query(Bytes::from_static(b"SELECT 40 + 2"))
        .encode(&mut out)
        .expect("query");
    stream.write_all(&out).expect("send");
    assert_eq!(
        stream.conn.alpn_protocol(),
        Some(&b"postgresql"[..]),
        "ALPN agreed"
    );
    let mut buf = BytesMut::new();
    let mut readies = 0;
    let mut value = None;
    while readies < 2 {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).expect("read");
        assert!(n > 0, "closed early");
        buf.extend_from_slice(&chunk[..n]);
        while let Some(f) = split_frame(
            &mut buf,
            Direction::Backend,
            &muxql::wire::Limits::default(),
        )
        .unwrap()
        {
            match BackendMessage::parse(&f).expect("message") {
                BackendMessage::ReadyForQuery(_) => readies += 1,
                BackendMessage::DataRow(r) => {
                    value = r.iter().next().flatten().map(|v| v.to_vec());
                }
                BackendMessage::ErrorResponse(e) => panic!("{e:?}"),
                _ => {}
            }
        }
    }
    assert_eq!(value.as_deref(), Some(&b"42"[..]));
    std::fs::remove_dir_all(&dir).ok();
}

/// The certificates of a PEM file.
fn rustls_pemfile_certs(pem: &[u8]) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .expect("PEM certificates")
}

/// SIGHUP loads the certificate again: new connections get the new one.
#[test]
fn sighup_loads_a_new_certificate() {
    let dir = scratch_dir();
    let (first_ca, first_cert, first_key) = make_certs(&dir, "first-ca");
    let (second_ca, second_cert, second_key) = make_certs(&dir, "second-ca");
    let (cert, key) = (dir.join("live.pem"), dir.join("live.key"));
    std::fs::copy(&first_cert, &cert).expect("copy");
    std::fs::copy(&first_key, &key).expect("copy");
    let pg = common::pg();
    let m = Muxql::start(&[
        "--upstream",
        &pg.url(&pg.scram_user),
        "--tls-cert",
        cert.to_str().expect("path"),
        "--tls-key",
        key.to_str().expect("path"),
        "--log-level",
        "warn",
    ]);
    assert!(psql(&m, "verify-full", Some(&first_ca), "prefer")
        .status
        .success());
    std::fs::copy(&second_cert, &cert).expect("copy");
    std::fs::copy(&second_key, &key).expect("copy");
    m.signal("HUP");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !psql(&m, "verify-full", Some(&second_ca), "prefer")
        .status
        .success()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the new certificate is not served"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let out = psql(&m, "verify-full", Some(&first_ca), "prefer");
    assert!(!out.status.success(), "the old certificate is gone");
    std::fs::remove_dir_all(&dir).ok();
}
