//! muxql's MySQL authentication in both roles, against each other: the server role
//! (mysql_native_password, caching_sha2_password with fast or full authentication, over TLS or
//! with an RSA key) and the client role (those two and client_ed25519, auth switches, public key
//! requests), with every message damaged or not on the way. Invariants: a wrong password is
//! never accepted (unless the account has none); an intact exchange with the right password
//! is accepted whenever the server's plugin can complete it, and the client then sees OK.
#![no_main]

use arbitrary::Arbitrary;
use bytes::{BufMut, Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use muxql::mysql::auth::caching_sha2::ServerRsaKey;
use muxql::mysql::auth::{
    AuthPlugin, ClientAuth, ClientAuthStep, ServerAuth, ServerAuthStep, ServerCredential,
};
use muxql::mysql::handshake::AUTH_MORE_DATA_HEADER;
use muxql::mysql::response::OkPacket;
use muxql::mysql::{CapabilityFlags, StatusFlags};
use muxql_fuzz::mutation::Mutation;

const PASSWORD: &[u8] = b"secret";
/// Messages either side sends at most in one exchange.
const MAX_STEPS: usize = 8;

#[derive(Arbitrary, Debug)]
struct Input {
    server_sha2: bool,
    fast_auth: bool,
    secure: bool,
    rsa: bool,
    /// The plugin the greeting names: native, caching_sha2, client_ed25519.
    client_plugin: u8,
    right_password: bool,
    empty_account: bool,
    scramble: [u8; 20],
    /// Greeting data past the scramble (client_ed25519 reads 32 bytes).
    extra: [u8; 12],
    seed: [u8; 32],
    /// Damage to the client's messages, in order (none past the list).
    to_server: Vec<Mutation>,
    /// Damage to the server's messages, in order.
    to_client: Vec<Mutation>,
}

fn damage(list: &[Mutation], i: &mut usize, message: &[u8], intact: &mut bool) -> Vec<u8> {
    let out = list
        .get(*i)
        .map_or_else(|| message.to_vec(), |m| m.apply(message));
    *i += 1;
    *intact &= out == message;
    out
}

fuzz_target!(|input: Input| {
    let caps = CapabilityFlags::CLIENT_PROTOCOL_41 | CapabilityFlags::CLIENT_PLUGIN_AUTH;
    let account: &[u8] = if input.empty_account { b"" } else { PASSWORD };
    let password: &[u8] = if input.right_password {
        account
    } else {
        b"wrong"
    };
    let server_plugin = if input.server_sha2 {
        AuthPlugin::CachingSha2Password
    } else {
        AuthPlugin::MysqlNativePassword
    };
    let Ok(mut server) = ServerAuth::new(
        server_plugin,
        input.scramble,
        ServerCredential::from_password(account),
        input.fast_auth,
    ) else {
        return;
    };
    let rsa = input.rsa.then(|| {
        ServerRsaKey::from_pkcs8_pem(include_str!("../../src/mysql/auth/test_rsa_key.pem"))
            .expect("the test key loads")
    });
    let plugin = match input.client_plugin % 3 {
        0 => AuthPlugin::MysqlNativePassword,
        1 => AuthPlugin::CachingSha2Password,
        _ => AuthPlugin::ClientEd25519,
    };
    let greeting_data = [&input.scramble[..], &input.extra[..]].concat();
    let Ok(client) = ClientAuth::new(
        Some(plugin.name()),
        &greeting_data,
        password,
        input.secure,
        input.seed,
    ) else {
        return;
    };
    let mut client = client.allow_public_key_request(true);
    let (mut to_server, mut to_client, mut intact) = (0, 0, true);

    let first = client.initial_response();
    let sent = damage(&input.to_server, &mut to_server, &first, &mut intact);
    let mut step = server.start(
        Some(plugin.name()),
        &sent,
        input.secure,
        rsa.as_ref(),
        input.seed,
    );
    let mut accepted = false;
    let mut client_done = false;
    for _ in 0..MAX_STEPS {
        let payload = match &step {
            Ok(ServerAuthStep::MoreData(data)) => more_data(data),
            Ok(ServerAuthStep::Switch(request)) => {
                let mut p = BytesMut::new();
                if request.encode(&mut p).is_err() {
                    break;
                }
                p.freeze()
            }
            Ok(ServerAuthStep::Accept { more_data: extra }) => {
                accepted = true;
                if let Some(data) = extra {
                    let p = damage(
                        &input.to_client,
                        &mut to_client,
                        &more_data(data),
                        &mut intact,
                    );
                    let _ = client.handle(&Bytes::from(p), caps);
                }
                let mut ok = BytesMut::new();
                OkPacket::new(StatusFlags::SERVER_STATUS_AUTOCOMMIT)
                    .encode(&mut ok, caps)
                    .expect("OK encodes");
                client_done = matches!(
                    client.handle(&ok.freeze(), caps),
                    Ok(ClientAuthStep::Done(_))
                );
                break;
            }
            Ok(ServerAuthStep::Reject) | Err(_) => break,
        };
        let p = damage(&input.to_client, &mut to_client, &payload, &mut intact);
        let reply = match client.handle(&Bytes::from(p), caps) {
            Ok(ClientAuthStep::Send(reply)) => reply,
            _ => break,
        };
        let sent = damage(&input.to_server, &mut to_server, &reply, &mut intact);
        step = server.step(&sent, input.secure, rsa.as_ref(), input.seed);
    }

    if accepted && !input.empty_account {
        assert!(input.right_password, "a wrong password was accepted");
    }
    let completable = !input.server_sha2 || input.fast_auth || input.secure || input.rsa;
    if intact && input.right_password && completable {
        assert!(
            accepted,
            "an intact login with the right password was refused: {step:?}"
        );
        assert!(client_done, "the client did not take the server's OK");
    }
});

fn more_data(data: &[u8]) -> Bytes {
    let mut p = BytesMut::new();
    p.put_u8(AUTH_MORE_DATA_HEADER);
    p.put_slice(data);
    p.freeze()
}
