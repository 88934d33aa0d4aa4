//! muxql's SCRAM-SHA-256(-PLUS) server role against its client role, with the client's two
//! messages damaged on the way (structure-aware: the client computes real proofs from what the
//! server sent). Invariants: the server accepts only the right password; an intact exchange
//! with the right password is accepted and the client verifies the server's signature; an
//! intact exchange with a wrong password is refused.
#![no_main]

use arbitrary::Arbitrary;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use muxql::pg::auth::{ScramClient, ScramSecret, ScramServer};
use muxql_fuzz::mutation::Mutation;

const PASSWORD: &str = "pencil";

#[derive(Arbitrary, Debug)]
struct Input {
    right_password: bool,
    /// The server holds a certificate hash (offers SCRAM-SHA-256-PLUS).
    server_binding: bool,
    /// The client has one (and asks for -PLUS when offered).
    client_binding: bool,
    salt: [u8; 16],
    /// Iterations of the stored secret, 1 to 4.
    iterations: u8,
    client_nonce: [u8; 18],
    server_nonce: [u8; 18],
    /// Another mechanism name instead of the one the client chose.
    mechanism: Option<Vec<u8>>,
    first: Mutation,
    last: Mutation,
}

fuzz_target!(|input: Input| {
    let cert_hash = vec![0xab; 32];
    let secret =
        ScramSecret::from_password(PASSWORD, &input.salt, 1 + u32::from(input.iterations % 4));
    let mut server = ScramServer::new(
        secret,
        input.server_nonce,
        input.server_binding.then(|| cert_hash.clone()),
    );
    let password = if input.right_password {
        PASSWORD
    } else {
        "pencil2"
    };
    let mut client = ScramClient::new(
        password,
        input.client_nonce,
        input.client_binding.then(|| cert_hash.clone()),
    );
    let offered: Vec<Bytes> = server
        .mechanisms()
        .iter()
        .map(|m| Bytes::from_static(m.as_bytes()))
        .collect();
    let Ok(chosen) = client.select_mechanism(&offered) else {
        return;
    };
    let mechanism = input
        .mechanism
        .clone()
        .unwrap_or_else(|| chosen.as_bytes().to_vec());
    let first = client.client_first();
    let sent_first = input.first.apply(&first);
    let Ok(server_first) = server.handle_client_first(&mechanism, &sent_first) else {
        return;
    };
    let Ok(last) = client.handle_server_first(&server_first) else {
        return;
    };
    let sent_last = input.last.apply(&last);
    let intact = sent_first == first && sent_last == last && mechanism == chosen.as_bytes();
    match server.handle_client_final(&sent_last) {
        Ok(server_final) => {
            assert!(input.right_password, "the server accepted a wrong password");
            if intact {
                client
                    .handle_server_final(&server_final)
                    .expect("the client verifies the server it proved itself to");
            }
        }
        Err(e) => assert!(
            !(intact && input.right_password),
            "an intact exchange with the right password was refused: {e}"
        ),
    }
});
