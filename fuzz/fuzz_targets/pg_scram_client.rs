//! muxql's SCRAM-SHA-256(-PLUS) client role (its upstream login) against its server role, with
//! the server's two messages damaged on the way. Invariants: the client verifies the server
//! only when the server really accepted its proof and the signature arrived intact; any
//! iteration count a server may send is bounded (`MAX_SCRAM_ITERATIONS`, and a cheap Hi() in
//! fuzzing builds); an intact exchange with the right password verifies.
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
    server_binding: bool,
    client_binding: bool,
    salt: [u8; 16],
    iterations: u8,
    client_nonce: [u8; 18],
    server_nonce: [u8; 18],
    /// The mechanisms the server lists, instead of its own.
    offered: Option<Vec<Vec<u8>>>,
    first: Mutation,
    last: Mutation,
}

fuzz_target!(|input: Input| {
    let cert_hash = vec![0xcd; 32];
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
    let offered: Vec<Bytes> = match &input.offered {
        Some(list) => list.iter().map(|m| Bytes::copy_from_slice(m)).collect(),
        None => server
            .mechanisms()
            .iter()
            .map(|m| Bytes::from_static(m.as_bytes()))
            .collect(),
    };
    let Ok(chosen) = client.select_mechanism(&offered) else {
        return;
    };
    let Ok(server_first) = server.handle_client_first(chosen.as_bytes(), &client.client_first())
    else {
        // The fuzzer's list made the client pick what this server refuses: feed the client
        // a server-first of the fuzzer's own instead.
        let forged = input.first.apply(b"r=x,s=QSXCR+Q6sek8bf92,i=4096");
        let _ = client.handle_server_first(&forged);
        return;
    };
    let sent_first = input.first.apply(&server_first);
    let Ok(last) = client.handle_server_first(&sent_first) else {
        return;
    };
    let accepted = server.handle_client_final(&last);
    let server_final = accepted.clone().unwrap_or_else(|_| b"v=".to_vec());
    let sent_last = input.last.apply(&server_final);
    let verified = client.handle_server_final(&sent_last).is_ok();
    if verified {
        assert!(
            accepted.is_ok(),
            "the client verified a server that refused it"
        );
        assert_eq!(
            sent_last, server_final,
            "the client verified a forged signature"
        );
    }
    if sent_first == server_first && sent_last == server_final && input.right_password {
        assert!(
            verified,
            "an intact exchange with the right password did not verify"
        );
    }
});
