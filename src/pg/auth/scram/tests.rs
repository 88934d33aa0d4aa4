use bytes::Bytes;

use super::*;

// RFC 7677 section 3.
const C_NONCE: &str = "rOprNGfwEbeRWgbNEkqO";
const S_NONCE: &str = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
const SALT: &str = "W22ZaJ0SNY7soEsUEjb6gQ==";
const CLIENT_FIRST: &str = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
const SERVER_FIRST: &str =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
const CLIENT_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                            p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
const SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

fn rfc_secret() -> ScramSecret {
    ScramSecret::from_password("pencil", &BASE64.decode(SALT).unwrap(), 4096)
}

#[test]
fn rfc7677_client() {
    let mut c = ScramClient::with_nonce_text("pencil", C_NONCE, None)
        .unwrap()
        .with_username("user");
    assert_eq!(c.mechanism(), SCRAM_SHA_256);
    assert_eq!(c.client_first(), CLIENT_FIRST.as_bytes());
    let fin = c.handle_server_first(SERVER_FIRST.as_bytes()).unwrap();
    assert_eq!(String::from_utf8(fin).unwrap(), CLIENT_FINAL);
    assert!(!c.is_verified());
    c.handle_server_final(SERVER_FINAL.as_bytes()).unwrap();
    assert!(c.is_verified());
}

#[test]
fn rfc7677_server() {
    let mut s = ScramServer::with_nonce_text(rfc_secret(), S_NONCE, None).unwrap();
    let first = s
        .handle_client_first(b"SCRAM-SHA-256", CLIENT_FIRST.as_bytes())
        .unwrap();
    assert_eq!(String::from_utf8(first).unwrap(), SERVER_FIRST);
    let fin = s.handle_client_final(CLIENT_FINAL.as_bytes()).unwrap();
    assert_eq!(String::from_utf8(fin).unwrap(), SERVER_FINAL);
}

#[test]
fn secret_text_round_trips_and_matches_postgres_protocol() {
    let s = rfc_secret();
    assert_eq!(ScramSecret::parse(&s.to_string()), Ok(s.clone()));
    assert!(s
        .to_string()
        .starts_with("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"));
    // A verifier produced by another implementation (random salt) logs in with our pair.
    let theirs = postgres_protocol::password::scram_sha_256(b"muxql_pw");
    let secret = ScramSecret::parse(&theirs).unwrap();
    assert_eq!(secret.to_string(), theirs);
    assert!(exchange("muxql_pw", secret, None, None).is_ok());
    for bad in [
        "",
        "SCRAM-SHA-256$0:c2FsdA==$AAAA:AAAA",
        "SCRAM-SHA-256$4096:$AAAA:AAAA",
        "SCRAM-SHA-256$4096:c2FsdA==$AAAA:AAAA",
        "SCRAM-SHA-1$4096:c2FsdA==$AAAA:AAAA",
        "SCRAM-SHA-256$x:c2FsdA==$AAAA:AAAA",
    ] {
        assert_eq!(
            ScramSecret::parse(bad),
            Err(Error::InvalidValue("SCRAM secret")),
            "{bad}"
        );
    }
}

/// Runs a full exchange between our client and server.
fn exchange(
    password: &str,
    secret: ScramSecret,
    client_cb: Option<Vec<u8>>,
    server_cb: Option<Vec<u8>>,
) -> Result<(), Error> {
    let mut server = ScramServer::new(secret, [7; 18], server_cb);
    let mut client = ScramClient::new(password, [9; 18], client_cb);
    let offered: Vec<Bytes> = server
        .mechanisms()
        .iter()
        .map(|m| Bytes::from_static(m.as_bytes()))
        .collect();
    let mech = client.select_mechanism(&offered)?;
    let first = server.handle_client_first(mech.as_bytes(), &client.client_first())?;
    let fin = client.handle_server_first(&first)?;
    let server_final = server.handle_client_final(&fin)?;
    client.handle_server_final(&server_final)
}

#[test]
fn our_client_and_server_agree() {
    let secret = ScramSecret::from_password("pw", b"salt", 16);
    assert_eq!(exchange("pw", secret.clone(), None, None), Ok(()));
    let cb = Some(vec![0xaa; 32]);
    assert_eq!(
        exchange("pw", secret.clone(), cb.clone(), cb.clone()),
        Ok(())
    );
    // Client has TLS, server offers no -PLUS: the client says 'y' and the server accepts.
    assert_eq!(exchange("pw", secret.clone(), cb.clone(), None), Ok(()));
    assert_eq!(
        exchange("wrong", secret.clone(), None, None),
        Err(Error::Auth("SCRAM proof mismatch"))
    );
    assert_eq!(
        exchange("pw", secret, Some(vec![0xbb; 32]), cb),
        Err(Error::Auth("SCRAM channel binding mismatch"))
    );
}

#[test]
fn saslprep_then_raw_fallback() {
    // U+00AD SOFT HYPHEN is mapped to nothing by SASLprep.
    let salt = b"salt";
    assert_eq!(
        ScramSecret::from_password("pen\u{ad}cil", salt, 8),
        ScramSecret::from_password("pencil", salt, 8)
    );
    // U+0007 is prohibited: the raw bytes are used instead, on both sides alike.
    let raw = ScramSecret::from_password("a\u{7}b", salt, 8);
    assert_ne!(raw, ScramSecret::from_password("ab", salt, 8));
    assert_eq!(exchange("a\u{7}b", raw, None, None), Ok(()));
}

#[test]
fn postgres_protocol_client_logs_in_to_our_server() {
    use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
    for cb in [None, Some(vec![0x5a; 32])] {
        let secret = ScramSecret::from_password("muxql_pw", b"0123456789abcdef", 4096);
        let mut server = ScramServer::new(secret, [3; 18], cb.clone());
        let binding = match &cb {
            Some(d) => ChannelBinding::tls_server_end_point(d.clone()),
            None => ChannelBinding::unsupported(),
        };
        let mech = if cb.is_some() {
            SCRAM_SHA_256_PLUS
        } else {
            SCRAM_SHA_256
        };
        let mut client = ScramSha256::new(b"muxql_pw", binding);
        let first = server
            .handle_client_first(mech.as_bytes(), client.message())
            .unwrap();
        client.update(&first).unwrap();
        let fin = server.handle_client_final(client.message()).unwrap();
        client.finish(&fin).unwrap();
    }
}

#[test]
fn hostile_server_first_messages_are_refused() {
    let cases: &[(&str, Error)] = &[
        (
            "r=abc,s=c2FsdA==,i=4096",
            Error::Auth("SCRAM server nonce does not extend the client nonce"),
        ),
        (
            "r=NONCE,s=c2FsdA==,i=4096",
            Error::Auth("SCRAM server nonce does not extend the client nonce"),
        ),
        ("r=NONCEx,s=,i=4096", Error::Auth("SCRAM salt length")),
        ("r=NONCEx,s=!!,i=4096", Error::Auth("SCRAM salt encoding")),
        (
            "r=NONCEx,s=c2FsdA==,i=0",
            Error::Auth("SCRAM iteration count out of range"),
        ),
        (
            "r=NONCEx,s=c2FsdA==,i=1000001",
            Error::Auth("SCRAM iteration count out of range"),
        ),
        (
            "r=NONCEx,s=c2FsdA==,i=99999999999",
            Error::Auth("SCRAM iteration count out of range"),
        ),
        (
            "r=NONCEx,s=c2FsdA==,i=-1",
            Error::Auth("SCRAM iteration count"),
        ),
        (
            "r=NONCEx,s=c2FsdA==,i=+1",
            Error::Auth("SCRAM iteration count"),
        ),
        (
            "r=NONCEx,s=c2FsdA==",
            Error::Auth("SCRAM server-first-message iterations"),
        ),
        (
            "m=ext,r=NONCEx,s=c2FsdA==,i=1",
            Error::Auth("SCRAM mandatory extension"),
        ),
        (
            "s=c2FsdA==,r=NONCEx,i=1",
            Error::Auth("SCRAM server-first-message nonce"),
        ),
        (
            "r=NONCE\x01,s=c2FsdA==,i=1",
            Error::Auth("SCRAM nonce characters"),
        ),
    ];
    for (msg, want) in cases {
        let mut c = ScramClient::with_nonce_text("pw", "NONCE", None).unwrap();
        assert_eq!(
            c.handle_server_first(msg.as_bytes()).as_ref(),
            Err(want),
            "{msg}"
        );
        // A failed exchange cannot be resumed.
        assert!(c.handle_server_first(b"r=NONCEx,s=c2FsdA==,i=1").is_err());
    }
    let long_nonce = format!("r=NONCE{},s=c2FsdA==,i=1", "x".repeat(MAX_SCRAM_NONCE_LEN));
    let long_salt = format!("r=NONCEx,s={},i=1", b64(&vec![1; MAX_SCRAM_SALT_LEN + 1]));
    for msg in [long_nonce, long_salt] {
        let mut c = ScramClient::with_nonce_text("pw", "NONCE", None).unwrap();
        assert!(c.handle_server_first(msg.as_bytes()).is_err());
    }
    let mut c = ScramClient::with_nonce_text("pw", "NONCE", None).unwrap();
    let huge = vec![b'x'; MAX_SCRAM_MESSAGE_LEN + 1];
    assert!(matches!(
        c.handle_server_first(&huge),
        Err(Error::TooLarge { .. })
    ));
}

#[test]
fn server_final_errors_and_order() {
    let mut c = ScramClient::with_nonce_text("pencil", C_NONCE, None)
        .unwrap()
        .with_username("user");
    assert_eq!(
        c.handle_server_final(SERVER_FINAL.as_bytes()),
        Err(Error::Unexpected("SCRAM server-final-message"))
    );
    let mut c = ScramClient::with_nonce_text("pencil", C_NONCE, None)
        .unwrap()
        .with_username("user");
    c.handle_server_first(SERVER_FIRST.as_bytes()).unwrap();
    assert_eq!(
        c.handle_server_final(b"e=invalid-proof"),
        Err(Error::Auth("SCRAM server error: invalid-proof"))
    );
    let mut c = ScramClient::with_nonce_text("pencil", C_NONCE, None)
        .unwrap()
        .with_username("user");
    c.handle_server_first(SERVER_FIRST.as_bytes()).unwrap();
    assert_eq!(
        c.handle_server_final(b"v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="),
        Err(Error::Auth("SCRAM server signature mismatch"))
    );
}

#[test]
fn hostile_client_messages_are_refused() {
    let first_cases: &[(&[u8], &str, Error)] = &[
        (
            b"SCRAM-SHA-1",
            "n,,n=,r=abc",
            Error::Auth("unsupported SASL mechanism"),
        ),
        (
            b"SCRAM-SHA-256-PLUS",
            "p=tls-server-end-point,,n=,r=abc",
            Error::Auth("unsupported SASL mechanism"),
        ),
        (
            b"SCRAM-SHA-256",
            "p=tls-server-end-point,,n=,r=abc",
            Error::Auth("SCRAM channel binding does not match the mechanism"),
        ),
        (
            b"SCRAM-SHA-256",
            "n,a=admin,n=,r=abc",
            Error::Auth("SCRAM authorization identity is not supported"),
        ),
        (
            b"SCRAM-SHA-256",
            "x,,n=,r=abc",
            Error::Auth("SCRAM gs2 header"),
        ),
        (
            b"SCRAM-SHA-256",
            "n,,r=abc",
            Error::Auth("SCRAM client-first-message user"),
        ),
        (
            b"SCRAM-SHA-256",
            "n,,n=,r=",
            Error::Auth("SCRAM nonce length"),
        ),
        (
            b"SCRAM-SHA-256",
            "n,,m=x,n=,r=abc",
            Error::Auth("SCRAM mandatory extension"),
        ),
        (
            b"SCRAM-SHA-256",
            "n,,",
            Error::Auth("SCRAM client-first-message user"),
        ),
    ];
    for (mech, msg, want) in first_cases {
        let mut s = ScramServer::new(rfc_secret(), [1; 18], None);
        assert_eq!(
            s.handle_client_first(mech, msg.as_bytes()).as_ref(),
            Err(want),
            "{msg}"
        );
    }
    // 'y' while the server supports channel binding is a downgrade.
    let mut s = ScramServer::new(rfc_secret(), [1; 18], Some(vec![1; 32]));
    assert_eq!(
        s.handle_client_first(b"SCRAM-SHA-256", b"y,,n=,r=abc"),
        Err(Error::Auth("SCRAM channel binding downgrade"))
    );
    let p = "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    let n = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
    let final_cases: &[(String, Error)] = &[
        (
            format!("c=biws,r={n}"),
            Error::Auth("SCRAM client-final-message proof"),
        ),
        (
            format!("c=eSws,r={n},{p}"),
            Error::Auth("SCRAM channel binding mismatch"),
        ),
        (
            format!("c=biws,r=rOprNGfwEbeRWgbNEkqO,{p}"),
            Error::Auth("SCRAM nonce mismatch"),
        ),
        (
            format!("c=biws,r={n},p=AAAA"),
            Error::Auth("SCRAM proof length"),
        ),
        (
            format!("c=biws,r={n},p=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="),
            Error::Auth("SCRAM proof mismatch"),
        ),
    ];
    for (msg, want) in final_cases {
        let mut s = ScramServer::with_nonce_text(rfc_secret(), S_NONCE, None).unwrap();
        s.handle_client_first(b"SCRAM-SHA-256", CLIENT_FIRST.as_bytes())
            .unwrap();
        assert_eq!(
            s.handle_client_final(msg.as_bytes()).as_ref(),
            Err(want),
            "{msg}"
        );
        // One attempt only.
        assert!(s.handle_client_final(CLIENT_FINAL.as_bytes()).is_err());
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    #[test]
    fn peers_never_panic(a in proptest::collection::vec(proptest::num::u8::ANY, 0..128),
                         b in proptest::collection::vec(proptest::num::u8::ANY, 0..128)) {
        let mut c = ScramClient::new("pw", [0; 18], None);
        let _ = c.handle_server_first(&a);
        let _ = c.handle_server_final(&b);
        let mut s = ScramServer::new(ScramSecret::from_password("pw", b"s", 1), [0; 18], None);
        let _ = s.handle_client_first(b"SCRAM-SHA-256", &a);
        let _ = s.handle_client_final(&b);
        let _ = ScramSecret::parse(&String::from_utf8_lossy(&a));
    }
}
