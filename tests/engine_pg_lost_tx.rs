//! Deterministic Engine tests of a transaction lost with its server connection: the client
//! gets 08006 and `ReadyForQuery 'E'`, is answered as in an aborted transaction block (25P02,
//! `ROLLBACK` for its transaction end) without any server, then goes on with its session as it
//! was before the transaction.

mod pg_sim;

use pg_sim::*;

/// The SQLSTATE of an ErrorResponse.
fn code(m: &BackendMessage) -> Option<Vec<u8>> {
    match m {
        BackendMessage::ErrorResponse(f) => f.code().map(|c| c.to_vec()),
        _ => None,
    }
}

fn is_error(m: &BackendMessage, sqlstate: &str) -> bool {
    code(m).as_deref() == Some(sqlstate.as_bytes())
}

fn rolled_back() -> Vec<BackendMessage> {
    vec![complete("ROLLBACK"), rfq(TransactionStatus::Idle)]
}

/// A client that set `search_path` to `before` outside a transaction and to `inside` within
/// one, whose upstream is lost under its `SELECT 2` in that transaction. Returns the sim, the
/// client and an idle client of the same pool.
fn lost_in_transaction() -> (Sim, ClientId) {
    let mut sim = Sim::new(config(1, PoolMode::Transaction));
    let a = sim.ready_client();
    let out = sim.client_send(a, &[q("SET search_path = before")]);
    let (u, _) = out.to_upstreams[0];
    sim.upstream_send(u, &[complete("SET"), rfq(TransactionStatus::Idle)]);
    let out = sim.client_send(a, &[q("BEGIN")]);
    let (u, _) = out.to_upstreams[0];
    let inside = rfq(TransactionStatus::InTransaction);
    sim.upstream_send(u, &[complete("BEGIN"), inside.clone()]);
    sim.client_send(a, &[q("SET search_path = inside")]);
    sim.upstream_send(u, &[complete("SET"), inside]);
    sim.client_send(a, &[q("SELECT 2")]);
    sim.engine.upstream_closed(u, sim.now);
    let out = sim.drain();
    assert!(out.closed_clients.is_empty(), "{out:?}");
    let msgs = out.client_msgs(a);
    assert!(
        matches!(&msgs[..], [e, BackendMessage::ReadyForQuery(TransactionStatus::Failed)] if is_error(e, "08006")),
        "{msgs:?}"
    );
    (sim, a)
}

#[test]
fn commands_get_25p02_until_the_client_ends_its_transaction() {
    let (mut sim, a) = lost_in_transaction();
    let out = sim.client_send(a, &[q("SELECT 3")]);
    let msgs = out.client_msgs(a);
    assert!(
        matches!(&msgs[..], [e, BackendMessage::ReadyForQuery(TransactionStatus::Failed)] if is_error(e, "25P02")),
        "{msgs:?}"
    );
    let out = sim.client_send(a, &[q("  ")]);
    assert_eq!(
        out.client_msgs(a),
        vec![
            BackendMessage::EmptyQueryResponse,
            rfq(TransactionStatus::Failed)
        ]
    );
    assert!(
        out.connects.is_empty() && out.to_upstreams.is_empty(),
        "nothing reaches a server inside the lost transaction"
    );
    // COMMIT of an aborted transaction is a ROLLBACK, as PostgreSQL answers it.
    let out = sim.client_send(a, &[q("COMMIT")]);
    assert_eq!(out.client_msgs(a), rolled_back());
    assert!(out.connects.is_empty());
    // Then the session goes on, with its settings from before the transaction.
    let out = sim.client_send(a, &[q("SELECT 4")]);
    let v = out.connects[0];
    let out = sim.login_upstream(v, 9);
    let sent = format!("{:?}", out.upstream_msgs(v));
    assert!(
        sent.contains("before") && !sent.contains("inside"),
        "{sent}"
    );
    assert!(sent.contains("SELECT 4"), "{sent}");
}

#[test]
fn extended_messages_are_skipped_after_the_error_up_to_their_sync() {
    let (mut sim, a) = lost_in_transaction();
    let out = sim.client_send(
        a,
        &[
            parse_msg("", "SELECT 1"),
            bind_msg(""),
            execute_msg(),
            FrontendMessage::Sync,
        ],
    );
    let msgs = out.client_msgs(a);
    assert!(
        matches!(&msgs[..], [e, BackendMessage::ReadyForQuery(TransactionStatus::Failed)] if is_error(e, "25P02")),
        "{msgs:?}"
    );
    // A ROLLBACK over the extended protocol (as pgjdbc sends it) ends the block.
    let out = sim.client_send(
        a,
        &[
            parse_msg("", "ROLLBACK"),
            bind_msg(""),
            FrontendMessage::Describe(Describe {
                kind: TargetKind::Portal,
                name: Bytes::new(),
            }),
            execute_msg(),
            FrontendMessage::Sync,
        ],
    );
    assert_eq!(
        out.client_msgs(a),
        [
            vec![
                BackendMessage::ParseComplete,
                BackendMessage::BindComplete,
                BackendMessage::NoData,
            ],
            rolled_back()
        ]
        .concat()
    );
    assert!(out.connects.is_empty() && out.to_upstreams.is_empty());
}

#[test]
fn a_rollback_prepared_before_the_loss_ends_the_block_and_close_forgets_names() {
    let mut sim = Sim::new(config(1, PoolMode::Transaction));
    let a = sim.ready_client();
    let out = sim.client_send(
        a,
        &[
            parse_msg("rb", "ROLLBACK"),
            parse_msg("s1", "SELECT 1"),
            FrontendMessage::Sync,
        ],
    );
    let (u, _) = out.to_upstreams[0];
    let out = sim.upstream_send(
        u,
        &[
            BackendMessage::ParseComplete,
            BackendMessage::ParseComplete,
            rfq(TransactionStatus::Idle),
        ],
    );
    assert_eq!(out.client_msgs(a).len(), 3, "{:?}", out.client_msgs(a));
    let out = sim.client_send(a, &[q("BEGIN")]);
    let (u, _) = out.to_upstreams[0];
    let inside = rfq(TransactionStatus::InTransaction);
    sim.upstream_send(u, &[complete("BEGIN"), inside]);
    sim.client_send(a, &[q("SELECT 2")]);
    sim.engine.upstream_closed(u, sim.now);
    sim.drain();
    let out = sim.client_send(
        a,
        &[
            FrontendMessage::Close(Close {
                kind: TargetKind::Statement,
                name: Bytes::from_static(b"s1"),
            }),
            bind_msg("rb"),
            execute_msg(),
            FrontendMessage::Sync,
        ],
    );
    assert_eq!(
        out.client_msgs(a),
        [
            vec![BackendMessage::CloseComplete, BackendMessage::BindComplete],
            rolled_back()
        ]
        .concat()
    );
    // "s1" was closed: preparing it again is no duplicate (42P05).
    let out = sim.client_send(a, &[parse_msg("s1", "SELECT 5"), FrontendMessage::Sync]);
    assert!(
        out.client_msgs(a).iter().all(|m| code(m).is_none()),
        "{:?}",
        out.client_msgs(a)
    );
}

#[test]
fn terminate_inside_the_lost_transaction_closes_the_client() {
    let (mut sim, a) = lost_in_transaction();
    let out = sim.client_send(a, &[FrontendMessage::Terminate]);
    assert_eq!(out.closed_clients, vec![a]);
    assert_eq!(sim.engine.stats().routes[0].clients, 0);
}

#[test]
fn a_commit_lost_in_flight_leaves_no_transaction_behind() {
    let mut sim = Sim::new(config(1, PoolMode::Transaction));
    let a = sim.ready_client();
    let out = sim.client_send(a, &[q("BEGIN")]);
    let (u, _) = out.to_upstreams[0];
    sim.upstream_send(
        u,
        &[complete("BEGIN"), rfq(TransactionStatus::InTransaction)],
    );
    sim.client_send(a, &[q("COMMIT")]);
    sim.engine.upstream_closed(u, sim.now);
    let out = sim.drain();
    let msgs = out.client_msgs(a);
    // Whether it committed is unknown (as with any dropped connection); the block is over.
    assert!(
        matches!(&msgs[..], [e, BackendMessage::ReadyForQuery(TransactionStatus::Idle)] if is_error(e, "08006")),
        "{msgs:?}"
    );
    let out = sim.client_send(a, &[q("BEGIN")]);
    assert_eq!(out.connects.len(), 1, "the next BEGIN goes to a server");
}

/// A Close sent after an unannounced loss (a driver dropping a statement) is answered as
/// ever; the loss is told with the next command, not swallowed by the Close.
#[test]
fn the_loss_is_told_with_the_next_command_not_a_close() {
    let mut sim = Sim::new(config(1, PoolMode::Transaction));
    let a = sim.ready_client();
    let out = sim.client_send(a, &[q("BEGIN")]);
    let (u, _) = out.to_upstreams[0];
    sim.upstream_send(
        u,
        &[complete("BEGIN"), rfq(TransactionStatus::InTransaction)],
    );
    sim.engine.upstream_closed(u, sim.now);
    assert!(sim.drain().client_msgs(a).is_empty());
    let close = FrontendMessage::Close(Close {
        kind: TargetKind::Statement,
        name: Bytes::from_static(b"s9"),
    });
    let out = sim.client_send(a, &[close, FrontendMessage::Sync]);
    assert_eq!(
        out.client_msgs(a),
        vec![
            BackendMessage::CloseComplete,
            rfq(TransactionStatus::Failed)
        ]
    );
    let out = sim.client_send(a, &[q("INSERT INTO t VALUES (1)")]);
    let msgs = out.client_msgs(a);
    assert!(
        matches!(&msgs[..], [e, BackendMessage::ReadyForQuery(TransactionStatus::Failed)] if is_error(e, "08006")),
        "{msgs:?}"
    );
}

/// As on the server, a Parse of the unnamed statement replaces it even in the aborted block:
/// bound again after the block, it is the ROLLBACK parsed last, not the statement before.
#[test]
fn the_unnamed_statement_is_the_one_parsed_last_even_in_a_lost_transaction() {
    let mut sim = Sim::new(config(1, PoolMode::Transaction));
    let a = sim.ready_client();
    let out = sim.client_send(a, &[q("BEGIN")]);
    let (u, _) = out.to_upstreams[0];
    let inside = rfq(TransactionStatus::InTransaction);
    sim.upstream_send(u, &[complete("BEGIN"), inside.clone()]);
    sim.client_send(a, &[parse_msg("", "SELECT 42"), FrontendMessage::Sync]);
    sim.upstream_send(u, &[BackendMessage::ParseComplete, inside]);
    sim.client_send(a, &[bind_msg(""), execute_msg(), FrontendMessage::Sync]);
    sim.engine.upstream_closed(u, sim.now);
    sim.drain();
    let out = sim.client_send(
        a,
        &[
            parse_msg("", "ROLLBACK"),
            bind_msg(""),
            execute_msg(),
            FrontendMessage::Sync,
        ],
    );
    assert_eq!(
        out.client_msgs(a),
        [
            vec![BackendMessage::ParseComplete, BackendMessage::BindComplete],
            rolled_back()
        ]
        .concat()
    );
    let out = sim.client_send(a, &[bind_msg(""), execute_msg(), FrontendMessage::Sync]);
    let v = out.connects[0];
    let out = sim.login_upstream(v, 9);
    let sent = format!("{:?}", out.upstream_msgs(v));
    assert!(
        sent.contains("ROLLBACK") && !sent.contains("SELECT 42"),
        "{sent}"
    );
}
