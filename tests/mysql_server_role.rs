//! The server role against a real client: a tiny blocking server built on `muxql::mysql`
//! (HandshakeV10, `ServerAuth`, commands, result sets) authenticates mysql_async with
//! mysql_native_password and caching_sha2_password (fast auth, and full auth through the RSA
//! public-key exchange), and answers its queries.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;

use bytes::{Bytes, BytesMut};
use muxql::mysql::auth::caching_sha2::ServerRsaKey;
use muxql::mysql::auth::{
    random_scramble, random_seed, AuthPlugin, ServerAuth, ServerAuthStep, ServerCredential,
};
use muxql::mysql::binary::encode_text_row;
use muxql::mysql::command::Command;
use muxql::mysql::handshake::{AuthMoreData, ClientHello, HandshakeV10};
use muxql::mysql::packet::write_packet;
use muxql::mysql::response::{ErrPacket, OkPacket, EOF_HEADER};
use muxql::mysql::stmt::ColumnDefinition;
use muxql::mysql::{CapabilityFlags, PacketCodec, StatusFlags};
use muxql::wire::Limits;
use mysql_async::prelude::Queryable;

const PASSWORD: &str = "muxql_pw";

/// Test-only 2048-bit key for the RSA exchange (generated for this test, never used elsewhere).
fn rsa_key() -> ServerRsaKey {
    let pem = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
        ])
        .output()
        .expect("openssl (installed by scripts/setup) generates the test RSA key");
    ServerRsaKey::from_pkcs8_pem(std::str::from_utf8(&pem.stdout).unwrap()).unwrap()
}

struct Server {
    sock: TcpStream,
    buf: BytesMut,
    codec: PacketCodec,
    caps: CapabilityFlags,
}

impl Server {
    fn read(&mut self) -> Option<Bytes> {
        loop {
            if let Some(p) = self.codec.parse(&mut self.buf).unwrap() {
                return Some(p.payload);
            }
            let mut chunk = [0u8; 16 * 1024];
            let n = self.sock.read(&mut chunk).ok()?;
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    fn write(&mut self, payload: &[u8]) {
        let mut out = BytesMut::new();
        let mut seq = self.codec.next_seq();
        write_packet(&mut out, &mut seq, payload).unwrap();
        self.codec.set_next_seq(seq);
        self.sock.write_all(&out).unwrap();
    }

    fn ok(&mut self) {
        let mut p = BytesMut::new();
        OkPacket::new(StatusFlags::SERVER_STATUS_AUTOCOMMIT)
            .encode(&mut p, self.caps)
            .unwrap();
        self.write(&p);
    }

    /// A one-column text result set holding `value`.
    fn single_value(&mut self, value: &[u8]) {
        self.write(&[1]);
        let mut p = BytesMut::new();
        ColumnDefinition {
            catalog: Bytes::from_static(b"def"),
            schema: Bytes::new(),
            table: Bytes::new(),
            org_table: Bytes::new(),
            name: Bytes::from_static(b"v"),
            org_name: Bytes::new(),
            extended_type_info: None,
            character_set: 63,
            column_length: 20,
            column_type: 8,
            flags: 0,
            decimals: 0,
        }
        .encode(&mut p, self.caps)
        .unwrap();
        self.write(&p);
        p.clear();
        encode_text_row(&mut p, &[Some(Bytes::copy_from_slice(value))]);
        self.write(&p);
        p.clear();
        let mut ok = OkPacket::new(StatusFlags::SERVER_STATUS_AUTOCOMMIT);
        ok.header = EOF_HEADER;
        ok.encode(&mut p, self.caps).unwrap();
        self.write(&p);
    }
}

/// Serves one connection: authenticates with `plugin`, then answers commands until COM_QUIT.
fn serve(sock: TcpStream, plugin: AuthPlugin, fast_auth: bool, key: &ServerRsaKey) {
    let scramble = random_scramble().unwrap();
    let server_caps = CapabilityFlags::CLIENT_LONG_PASSWORD
        | CapabilityFlags::CLIENT_PROTOCOL_41
        | CapabilityFlags::CLIENT_SECURE_CONNECTION
        | CapabilityFlags::CLIENT_PLUGIN_AUTH
        | CapabilityFlags::CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
        | CapabilityFlags::CLIENT_CONNECT_WITH_DB
        | CapabilityFlags::CLIENT_CONNECT_ATTRS
        | CapabilityFlags::CLIENT_TRANSACTIONS
        | CapabilityFlags::CLIENT_MULTI_RESULTS
        | CapabilityFlags::CLIENT_DEPRECATE_EOF;
    let mut s = Server {
        sock,
        buf: BytesMut::new(),
        codec: PacketCodec::pre_auth(Limits::default()),
        caps: server_caps,
    };
    let mut greeting = BytesMut::new();
    HandshakeV10 {
        server_version: Bytes::from_static(b"8.0.36-muxql"),
        connection_id: 7,
        auth_plugin_data: Bytes::copy_from_slice(&scramble),
        capabilities: server_caps,
        character_set: 45,
        status: StatusFlags::SERVER_STATUS_AUTOCOMMIT,
        auth_plugin_name: Some(Bytes::from_static(plugin.name())),
    }
    .encode(&mut greeting)
    .unwrap();
    s.write(&greeting);
    let Some(hello) = s.read() else { return };
    let ClientHello::Response(resp) = ClientHello::parse(&hello).unwrap() else {
        panic!("the test client does not use TLS")
    };
    s.caps = server_caps & resp.capabilities;
    let credential = ServerCredential::from_password(PASSWORD.as_bytes());
    let mut auth = ServerAuth::new(plugin, scramble, credential, fast_auth).unwrap();
    let mut step = auth
        .start(
            resp.auth_plugin_name.as_deref(),
            &resp.auth_response,
            false,
            Some(key),
            random_seed().unwrap(),
        )
        .unwrap();
    loop {
        match step {
            ServerAuthStep::Accept { more_data } => {
                if let Some(data) = more_data {
                    let mut p = BytesMut::new();
                    AuthMoreData { data }.encode(&mut p);
                    s.write(&p);
                }
                s.ok();
                break;
            }
            ServerAuthStep::Reject => {
                let mut p = BytesMut::new();
                ErrPacket {
                    code: 1045,
                    sql_state: Some(*b"28000"),
                    message: Bytes::from_static(b"Access denied"),
                }
                .encode(&mut p, s.caps);
                s.write(&p);
                return;
            }
            ServerAuthStep::MoreData(data) => {
                let mut p = BytesMut::new();
                AuthMoreData { data }.encode(&mut p);
                s.write(&p);
            }
            ServerAuthStep::Switch(req) => {
                let mut p = BytesMut::new();
                req.encode(&mut p).unwrap();
                s.write(&p);
            }
        }
        let Some(data) = s.read() else { return };
        step = auth
            .step(&data, false, Some(key), random_seed().unwrap())
            .unwrap();
    }
    s.codec.set_max_payload(Limits::default().max_message);
    loop {
        s.codec.set_next_seq(0);
        let Some(p) = s.read() else { return };
        match Command::parse(&p, s.caps).unwrap() {
            Command::Quit => return,
            Command::Query(q) if &q.sql[..] == b"SELECT 41 + 1" => s.single_value(b"42"),
            _ => s.ok(),
        }
    }
}

/// Starts a server on a free loopback port that serves `conns` connections.
fn start(plugin: AuthPlugin, fast_auth: bool, conns: usize) -> (u16, thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = thread::spawn(move || {
        let key = rsa_key();
        for sock in listener.incoming().take(conns) {
            serve(sock.unwrap(), plugin, fast_auth, &key);
        }
    });
    (port, handle)
}

fn opts(port: u16, password: &str) -> mysql_async::Opts {
    mysql_async::OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(port)
        .user(Some("app"))
        .pass(Some(password))
        .db_name(Some("muxql"))
        .prefer_socket(false)
        .max_allowed_packet(Some(16 << 20))
        .wait_timeout(Some(28_800))
        .into()
}

#[tokio::test]
async fn mysql_async_logs_in_to_the_server_role() {
    for (plugin, fast) in [
        (AuthPlugin::MysqlNativePassword, true),
        (AuthPlugin::CachingSha2Password, true),
        (AuthPlugin::CachingSha2Password, false),
    ] {
        let (port, server) = start(plugin, fast, 2);
        let mut conn = mysql_async::Conn::new(opts(port, PASSWORD))
            .await
            .unwrap_or_else(|e| panic!("{plugin:?} fast={fast}: {e}"));
        conn.ping().await.unwrap();
        let v: Option<i64> = conn.query_first("SELECT 41 + 1").await.unwrap();
        assert_eq!(v, Some(42));
        conn.disconnect().await.unwrap();

        let err = mysql_async::Conn::new(opts(port, "wrong"))
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("Access denied"),
            "{plugin:?}: {err}"
        );
        server.join().unwrap();
    }
}
