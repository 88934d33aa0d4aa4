//! Deterministic Engine tests of the connection limits: `max_clients` refuses newcomers as the
//! servers do, `max_logins` closes the connection logging in the longest.

mod pg_sim;

use pg_sim::*;

/// The SQLSTATE of the only message sent to `id`, which must be an ErrorResponse.
fn only_error_code(out: &Out, id: ClientId) -> String {
    match &out.client_msgs(id)[..] {
        [BackendMessage::ErrorResponse(f)] => {
            String::from_utf8_lossy(f.code().expect("a code")).into_owned()
        }
        other => panic!("expected one ErrorResponse, got {other:?}"),
    }
}

#[test]
fn clients_beyond_max_clients_are_refused_with_53300_and_the_others_go_on() {
    let mut cfg = config(1, PoolMode::Transaction);
    cfg.max_clients = 2;
    let mut sim = Sim::new(cfg);
    let a = sim.ready_client();
    let pending = sim.engine.client_open(Protocol::Postgres, sim.now);
    sim.drain();
    let refused = sim.engine.client_open(Protocol::Postgres, sim.now);
    let out = sim.drain();
    assert_eq!(only_error_code(&out, refused), "53300");
    assert_eq!(out.closed_clients, vec![refused]);
    assert!(sim.engine.has_client(pending), "the pending login stays");
    let out = sim.client_send(a, &[q("SELECT 1")]);
    assert_eq!(out.to_upstreams.len(), 1, "a still works");
    sim.engine.client_closed(pending, sim.now);
    let (b, out) = sim.open_client(&[]);
    assert!(
        is_ready(&out.client_msgs(b)),
        "a place freed takes a client again"
    );
}

#[test]
fn at_max_logins_a_new_connection_closes_the_one_logging_in_the_longest() {
    let mut cfg = config(1, PoolMode::Transaction);
    cfg.max_logins = 3;
    let mut sim = Sim::new(cfg);
    let ready = sim.ready_client();
    let stalled: Vec<ClientId> = (0..3)
        .map(|_| {
            sim.now += 1;
            sim.engine.client_open(Protocol::Postgres, sim.now)
        })
        .collect();
    sim.drain();
    let (newcomer, out) = sim.open_client(&[]);
    assert_eq!(only_error_code(&out, stalled[0]), "53300");
    assert_eq!(out.closed_clients, vec![stalled[0]]);
    assert!(is_ready(&out.client_msgs(newcomer)), "the newcomer logs in");
    assert!(sim.engine.has_client(stalled[1]) && sim.engine.has_client(stalled[2]));
    assert!(
        sim.engine.has_client(ready),
        "logged-in clients do not count"
    );
    assert_eq!(sim.engine.stats().clients_logging_in, 2);
    assert_eq!(sim.engine.stats().errors.timeout, 1);
}

#[test]
fn clients_that_logged_in_or_left_are_never_closed_for_max_logins() {
    let mut cfg = config(1, PoolMode::Transaction);
    cfg.max_logins = 2;
    let mut sim = Sim::new(cfg);
    let ready: Vec<ClientId> = (0..50).map(|_| sim.ready_client()).collect();
    for _ in 0..50 {
        let gone = sim.engine.client_open(Protocol::Postgres, sim.now);
        sim.engine.client_closed(gone, sim.now);
    }
    let stalled = sim.engine.client_open(Protocol::Postgres, sim.now);
    let out = sim.drain();
    assert!(out.closed_clients.is_empty(), "{:?}", out.closed_clients);
    assert!(ready.iter().all(|&c| sim.engine.has_client(c)));
    assert!(sim.engine.has_client(stalled));
}

#[test]
fn zero_means_no_limit() {
    let mut cfg = config(1, PoolMode::Transaction);
    cfg.max_clients = 0;
    cfg.max_logins = 0;
    let mut sim = Sim::new(cfg);
    let ids: Vec<ClientId> = (0..2_000)
        .map(|_| sim.engine.client_open(Protocol::Postgres, sim.now))
        .collect();
    assert!(sim.drain().closed_clients.is_empty());
    assert!(ids.iter().all(|&c| sim.engine.has_client(c)));
}
