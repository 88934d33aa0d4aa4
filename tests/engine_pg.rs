//! Deterministic Engine tests: scripted clients and a scripted fake upstream, no sockets.

mod pg_sim;

use pg_sim::*;

#[test]
fn login_waits_for_the_first_upstream_then_welcomes_with_its_parameters() {
    let mut sim = Sim::new(config(2, PoolMode::Transaction));
    let (c, out) = sim.open_client(&[("application_name", "app")]);
    assert_eq!(out.connects.len(), 1);
    assert!(
        !is_ready(&out.client_msgs(c)),
        "no ReadyForQuery before the baseline"
    );
    let out = sim.login_upstream(out.connects[0], 9);
    let msgs = out.client_msgs(c);
    assert!(is_ready(&msgs));
    assert!(msgs.iter().any(|m| matches!(m,
        BackendMessage::ParameterStatus { name, value } if &name[..] == b"application_name" && &value[..] == b"app")));
    assert!(msgs
        .iter()
        .any(|m| matches!(m, BackendMessage::BackendKeyData { key, .. } if key.len() == 4)));
}

#[test]
fn transactions_share_one_upstream_and_waiters_are_served_in_order() {
    let mut sim = Sim::new(config(1, PoolMode::Transaction));
    let a = sim.ready_client();
    let (b, _) = sim.open_client(&[]);
    let out = sim.client_send(a, &[q("BEGIN")]);
    let (u, _) = out.to_upstreams[0];
    sim.upstream_send(
        u,
        &[complete("BEGIN"), rfq(TransactionStatus::InTransaction)],
    );
    let out = sim.client_send(b, &[q("SELECT 2")]);
    assert!(
        out.to_upstreams.is_empty(),
        "b waits while a's transaction runs"
    );
    assert_eq!(sim.engine.stats().routes[0].clients_waiting, 1);
    let out = sim.client_send(a, &[q("COMMIT")]);
    assert_eq!(out.upstream_msgs(u), vec![q("COMMIT")]);
    let out = sim.upstream_send(u, &[complete("COMMIT"), rfq(TransactionStatus::Idle)]);
    assert!(is_ready(&out.client_msgs(a)));
    assert_eq!(
        out.upstream_msgs(u),
        vec![q("SELECT 2")],
        "b's query goes to the freed upstream"
    );
    let out = sim.upstream_send(u, &[complete("SELECT 1"), rfq(TransactionStatus::Idle)]);
    assert_eq!(out.client_msgs(b).len(), 2);
    assert!(out.client_msgs(a).is_empty(), "nothing of b reaches a");
    let stats = sim.engine.stats().routes[0];
    assert_eq!(stats.transactions, 2);
    assert_eq!(stats.upstreams, 1);
    assert_eq!(stats.upstreams_idle, 1);
}

#[test]
fn startup_parameters_are_replayed_and_their_responses_swallowed() {
    let mut sim = Sim::new(config(1, PoolMode::Transaction));
    let (a, out) = sim.open_client(&[("application_name", "app_a")]);
    let u = out.connects[0];
    sim.login_upstream(u, 1);
    let out = sim.client_send(a, &[q("SELECT 1")]);
    let sent = out.upstream_msgs(u);
    assert_eq!(sent.len(), 2);
    match &sent[0] {
        FrontendMessage::Query(sql) => {
            let sql = std::str::from_utf8(sql).unwrap();
            assert!(
                sql.contains("set_config('application_name','app_a',false)"),
                "{sql}"
            );
        }
        other => panic!("expected the replay query, got {other:?}"),
    }
    let out = sim.upstream_send(
        u,
        &[
            BackendMessage::RowDescription(vec![]),
            complete("SELECT 1"),
            rfq(TransactionStatus::Idle),
            complete("SELECT 1"),
            rfq(TransactionStatus::Idle),
        ],
    );
    let msgs = out.client_msgs(a);
    assert_eq!(
        msgs,
        vec![complete("SELECT 1"), rfq(TransactionStatus::Idle)]
    );
    // A second transaction of the same client needs no replay.
    let out = sim.client_send(a, &[q("SELECT 2")]);
    assert_eq!(out.upstream_msgs(u), vec![q("SELECT 2")]);
}

#[test]
fn a_client_leaving_mid_transaction_gets_its_upstream_rolled_back() {
    let mut sim = Sim::new(config(1, PoolMode::Transaction));
    let a = sim.ready_client();
    let out = sim.client_send(a, &[q("BEGIN")]);
    let (u, _) = out.to_upstreams[0];
    sim.upstream_send(
        u,
        &[complete("BEGIN"), rfq(TransactionStatus::InTransaction)],
    );
    sim.engine.client_closed(a, sim.now);
    let out = sim.drain();
    assert_eq!(out.upstream_msgs(u), vec![q("ROLLBACK")]);
    let b = sim.ready_client();
    let out = sim.client_send(b, &[q("SELECT 1")]);
    assert!(
        out.to_upstreams.is_empty(),
        "the upstream is still being cleaned"
    );
    let out = sim.upstream_send(u, &[complete("ROLLBACK"), rfq(TransactionStatus::Idle)]);
    assert!(
        out.client_msgs(b).is_empty(),
        "the rollback's answer reaches nobody"
    );
    assert_eq!(out.upstream_msgs(u), vec![q("SELECT 1")]);
}

#[test]
fn a_client_leaving_mid_request_retires_its_upstream() {
    let mut sim = Sim::new(config(1, PoolMode::Transaction));
    let a = sim.ready_client();
    let out = sim.client_send(a, &[q("SELECT pg_sleep(10)")]);
    let (u, _) = out.to_upstreams[0];
    sim.engine.client_closed(a, sim.now);
    let out = sim.drain();
    assert_eq!(out.closed_upstreams, vec![u]);
    assert_eq!(sim.engine.stats().routes[0].upstreams, 0);
}

#[test]
fn cancel_reaches_the_upstream_only_while_the_query_runs() {
    let mut sim = Sim::new(config(1, PoolMode::Transaction));
    let (a, out) = sim.open_client(&[]);
    let welcome = sim.login_upstream(out.connects[0], 77);
    let (pid, key) = cancel_key(&welcome, a);
    let cancel = |sim: &mut Sim, key: Bytes| sim.cancel(pid, key);
    assert!(
        cancel(&mut sim, key.clone()).is_empty(),
        "idle client: nothing to cancel"
    );
    let out = sim.client_send(a, &[q("SELECT pg_sleep(10)")]);
    let (u, _) = out.to_upstreams[0];
    assert!(
        cancel(&mut sim, Bytes::from_static(b"nope")).is_empty(),
        "wrong key"
    );
    let sent = cancel(&mut sim, key.clone());
    assert_eq!(sent.len(), 1);
    let mut expected = BytesMut::new();
    StartupRequest::Cancel(CancelRequest {
        pid: 77,
        key: Bytes::from_static(b"KEY!"),
    })
    .encode(&mut expected)
    .unwrap();
    assert_eq!(sent[0], expected.freeze(), "the upstream's own key");
    sim.upstream_send(u, &[complete("SELECT 1"), rfq(TransactionStatus::Idle)]);
    assert!(
        cancel(&mut sim, key).is_empty(),
        "finished: the next query is safe"
    );
}

/// A cancel may reach the server after the query it was meant for has ended: the upstream is
/// not given to another client until the host reports the cancel's side connection done (the
/// server has acted on it; an idle backend ignores it), or until a grace period passes.
#[test]
fn a_cancelled_upstream_is_not_reused_until_the_cancel_is_done() {
    let mut sim = Sim::new(config(1, PoolMode::Transaction));
    let (a, out) = sim.open_client(&[]);
    let welcome = sim.login_upstream(out.connects[0], 77);
    let (pid, key) = cancel_key(&welcome, a);
    let b = sim.ready_client();
    for round in 0..2 {
        let out = sim.client_send(a, &[q("SELECT pg_sleep(10)")]);
        let (u, _) = out.to_upstreams[0];
        assert_eq!(sim.cancel(pid, key.clone()).len(), 1);
        let out = sim.client_send(b, &[q("SELECT 1")]);
        assert!(out.to_upstreams.is_empty(), "nobody queues behind a cancel");
        let out = sim.upstream_send(
            u,
            &[
                error("57014", "canceling statement due to user request"),
                rfq(TransactionStatus::Idle),
            ],
        );
        assert!(is_ready(&out.client_msgs(a)));
        assert!(
            out.to_upstreams.is_empty(),
            "held while the cancel is on its way"
        );
        let out = if round == 0 {
            sim.engine.cancel_done(u, sim.now);
            sim.drain()
        } else {
            sim.now += 4_999;
            sim.engine.handle_timeout(sim.now);
            assert!(sim.drain().to_upstreams.is_empty(), "still held");
            assert_eq!(sim.engine.poll_timeout(), Some(sim.now + 1));
            sim.now += 1;
            sim.engine.handle_timeout(sim.now);
            sim.drain()
        };
        assert_eq!(out.upstream_msgs(u), vec![q("SELECT 1")], "round {round}");
        sim.upstream_send(u, &select_answer("1"));
    }
}

/// A client idle inside a transaction hears of its lost server connection at its next
/// command (a COMMIT fails with it); the other clients notice nothing.
#[test]
fn an_upstream_dying_under_an_idle_transaction_fails_its_next_command_only() {
    let mut sim = Sim::new(config(2, PoolMode::Transaction));
    let a = sim.ready_client();
    let b = sim.ready_client();
    let out = sim.client_send(a, &[q("BEGIN")]);
    let (ua, _) = out.to_upstreams[0];
    sim.upstream_send(
        ua,
        &[complete("BEGIN"), rfq(TransactionStatus::InTransaction)],
    );
    let out = sim.client_send(b, &[q("SELECT 1")]);
    let ub = out.connects[0];
    sim.login_upstream(ub, 5);
    sim.engine.upstream_closed(ua, sim.now);
    let out = sim.drain();
    assert!(out.closed_clients.is_empty());
    assert!(
        out.closed_upstreams.is_empty(),
        "the host reported it closed: no CloseUpstream for a dead id"
    );
    assert!(out.client_msgs(a).is_empty(), "told at its next command");
    let out = sim.upstream_send(ub, &[complete("SELECT 1"), rfq(TransactionStatus::Idle)]);
    assert!(is_ready(&out.client_msgs(b)), "b carries on");
    let out = sim.client_send(a, &[q("COMMIT")]);
    assert!(
        matches!(&out.client_msgs(a)[..], [BackendMessage::ErrorResponse(f), BackendMessage::ReadyForQuery(TransactionStatus::Idle)]
            if f.code().map(|c| &c[..]) == Some(&b"08006"[..])),
        "{:?}",
        out.client_msgs(a)
    );
    assert!(out.to_upstreams.is_empty(), "the COMMIT reached no server");
}

#[test]
fn malformed_client_input_closes_only_that_client() {
    let mut sim = Sim::new(config(1, PoolMode::Transaction));
    let a = sim.ready_client();
    let b = sim.ready_client();
    sim.engine
        .client_data(a, BytesMut::from(&b"Q\0\0\0\x02"[..]), sim.now);
    let out = sim.drain();
    assert_eq!(out.closed_clients, vec![a]);
    assert!(
        matches!(&out.client_msgs(a)[..], [BackendMessage::ErrorResponse(f)] if f.code().map(|c| &c[..]) == Some(&b"08P01"[..]))
    );
    let out = sim.client_send(b, &[q("SELECT 1")]);
    assert_eq!(out.to_upstreams.len(), 1);
}

#[test]
fn session_state_that_cannot_move_pins_the_client() {
    let mut sim = Sim::new(config(1, PoolMode::Transaction));
    let a = sim.ready_client();
    let b = sim.ready_client();
    let out = sim.client_send(a, &[q("LISTEN ch")]);
    let (u, _) = out.to_upstreams[0];
    sim.upstream_send(u, &[complete("LISTEN"), rfq(TransactionStatus::Idle)]);
    assert_eq!(sim.engine.stats().routes[0].clients_pinned, 1);
    let out = sim.client_send(b, &[q("SELECT 1")]);
    assert!(out.to_upstreams.is_empty(), "a keeps its upstream");
    let out = sim.client_send(a, &[q("DISCARD ALL")]);
    assert_eq!(out.upstream_msgs(u), vec![q("DISCARD ALL")]);
    let out = sim.upstream_send(u, &[complete("DISCARD ALL"), rfq(TransactionStatus::Idle)]);
    assert_eq!(sim.engine.stats().routes[0].clients_pinned, 0);
    assert_eq!(
        out.upstream_msgs(u),
        vec![q("SELECT 1")],
        "unpinned: b gets the upstream"
    );
}

#[test]
fn reject_policy_refuses_pinning_statements_through_the_server() {
    let mut cfg = config(1, PoolMode::Transaction);
    cfg.pin_policy = PinPolicy::Reject;
    let mut sim = Sim::new(cfg);
    let a = sim.ready_client();
    let out = sim.client_send(a, &[q("SELECT pg_advisory_lock(1)")]);
    let (u, _) = out.to_upstreams[0];
    match &out.upstream_msgs(u)[0] {
        FrontendMessage::Query(sql) => assert!(sql.starts_with(b"DO $muxql$")),
        other => panic!("{other:?}"),
    }
    assert_eq!(sim.engine.stats().routes[0].clients_pinned, 0);
}

#[test]
fn waiting_clients_time_out_with_an_error() {
    let mut cfg = config(1, PoolMode::Transaction);
    cfg.wait_timeout_ms = 500;
    let mut sim = Sim::new(cfg);
    let a = sim.ready_client();
    let b = sim.ready_client();
    let out = sim.client_send(a, &[q("BEGIN")]);
    let (u, _) = out.to_upstreams[0];
    sim.upstream_send(
        u,
        &[complete("BEGIN"), rfq(TransactionStatus::InTransaction)],
    );
    sim.client_send(b, &[q("SELECT 1")]);
    let deadline = sim.engine.poll_timeout().unwrap();
    assert_eq!(deadline, sim.now + 500);
    sim.engine.handle_timeout(deadline);
    let out = sim.drain();
    assert_eq!(out.closed_clients, vec![b]);
    assert!(
        matches!(&out.client_msgs(b)[..], [BackendMessage::ErrorResponse(f)] if f.code().map(|c| &c[..]) == Some(&b"53300"[..]))
    );
}

#[test]
fn session_mode_discards_state_when_the_client_leaves() {
    let mut sim = Sim::new(config(1, PoolMode::Session));
    let a = sim.ready_client();
    let out = sim.client_send(a, &[q("SET search_path TO x")]);
    let (u, _) = out.to_upstreams[0];
    sim.upstream_send(u, &[complete("SET"), rfq(TransactionStatus::Idle)]);
    let b = sim.ready_client();
    assert!(sim.client_send(b, &[q("SELECT 1")]).to_upstreams.is_empty());
    sim.engine.client_closed(a, sim.now);
    let out = sim.drain();
    assert_eq!(out.upstream_msgs(u), vec![q("DISCARD ALL")]);
    let out = sim.upstream_send(u, &[complete("DISCARD ALL"), rfq(TransactionStatus::Idle)]);
    assert_eq!(out.upstream_msgs(u), vec![q("SELECT 1")]);
}

#[test]
fn error_responses_without_fields_are_relayed() {
    let mut sim = Sim::new(config(1, PoolMode::Transaction));
    let a = sim.ready_client();
    let out = sim.client_send(a, &[q("SELECT x")]);
    let (u, _) = out.to_upstreams[0];
    let out = sim.upstream_send(
        u,
        &[
            BackendMessage::ErrorResponse(Fields::default()),
            rfq(TransactionStatus::Idle),
        ],
    );
    assert_eq!(out.client_msgs(a).len(), 2);
}

#[test]
fn pipelined_queries_keep_the_upstream_until_the_last_answer() {
    let mut sim = Sim::new(config(1, PoolMode::Transaction));
    let a = sim.ready_client();
    let b = sim.ready_client();
    let out = sim.client_send(a, &[q("SELECT 1"), q("SELECT 2")]);
    let (u, _) = out.to_upstreams[0];
    assert_eq!(out.upstream_msgs(u).len(), 2);
    sim.client_send(b, &[q("SELECT 3")]);
    let out = sim.upstream_send(u, &[complete("SELECT 1"), rfq(TransactionStatus::Idle)]);
    assert!(
        out.to_upstreams.is_empty(),
        "b still waits: a's second query is in flight"
    );
    let out = sim.upstream_send(u, &[complete("SELECT 1"), rfq(TransactionStatus::Idle)]);
    assert_eq!(out.upstream_msgs(u), vec![q("SELECT 3")]);
}

#[test]
fn set_effects_follow_the_transaction_outcome() {
    let mut sim = Sim::new(config(1, PoolMode::Transaction));
    let a = sim.ready_client();
    let out = sim.client_send(a, &[q("BEGIN; SET search_path TO rolled_back; ROLLBACK")]);
    let (u, _) = out.to_upstreams[0];
    sim.upstream_send(
        u,
        &[
            complete("BEGIN"),
            complete("SET"),
            complete("ROLLBACK"),
            rfq(TransactionStatus::Idle),
        ],
    );
    sim.client_send(a, &[q("SET search_path TO kept")]);
    sim.upstream_send(u, &[complete("SET"), rfq(TransactionStatus::Idle)]);
    // Another client lands on the upstream: it must be reset to the baseline.
    let b = sim.ready_client();
    let out = sim.client_send(b, &[q("SELECT 1")]);
    assert_eq!(out.upstream_msgs(u)[0], q("RESET search_path;"));
    sim.upstream_send(
        u,
        &[
            complete("RESET"),
            rfq(TransactionStatus::Idle),
            complete("SELECT 1"),
            rfq(TransactionStatus::Idle),
        ],
    );
    // And `a` gets its own value back, never the rolled-back one.
    let out = sim.client_send(a, &[q("SELECT 2")]);
    assert_eq!(out.upstream_msgs(u)[0], q("SET search_path TO kept;"));
}

#[test]
fn an_upstream_skipping_scram_verification_is_refused() {
    let mut cfg = config(1, PoolMode::Transaction);
    cfg.routes[0].upstream_password = "secret".into();
    let mut sim = Sim::new(cfg);
    let (c, out) = sim.open_client(&[]);
    let u = out.connects[0];
    sim.engine.upstream_connected(u, sim.now);
    sim.drain();
    let out = sim.upstream_send(
        u,
        &[BackendMessage::Authentication(
            muxql::pg::backend::Authentication::Sasl {
                mechanisms: vec![Bytes::from_static(b"SCRAM-SHA-256")],
            },
        )],
    );
    assert_eq!(out.to_upstreams.len(), 1, "SASLInitialResponse sent");
    let out = sim.upstream_send(
        u,
        &[BackendMessage::Authentication(
            muxql::pg::backend::Authentication::Ok,
        )],
    );
    assert_eq!(out.closed_upstreams, vec![u]);
    assert_eq!(
        out.closed_clients,
        vec![c],
        "the waiting client is told, not served"
    );
}

// Cross-client pipelining (src/mux/pg/pipeline.rs).

#[test]
fn autocommit_queries_queue_behind_a_busy_upstream_and_get_their_own_answers() {
    let (mut sim, c, u) = one_busy_upstream(3);
    let out = sim.client_send(c[1], &[q("SELECT 2")]);
    assert_eq!(out.upstream_msgs(u), vec![q("SELECT 2")], "sent at once");
    let out = sim.client_send(c[2], &[q("SELECT 3")]);
    assert_eq!(out.upstream_msgs(u), vec![q("SELECT 3")]);
    let stats = sim.engine.stats().routes[0];
    assert_eq!((stats.pipelined, stats.clients_waiting), (2, 0));
    let answers = [select_answer("1"), select_answer("2"), select_answer("3")].concat();
    let out = sim.upstream_send(u, &answers);
    for (i, id) in c.iter().enumerate() {
        assert_eq!(out.client_msgs(*id), select_answer(&(i + 1).to_string()));
    }
    let stats = sim.engine.stats().routes[0];
    assert_eq!((stats.upstreams_idle, stats.clients_active), (1, 0));
    assert_eq!(stats.transactions, 3);
}

/// A client that stops reading its answer blocks the host's write queue to it: nobody may
/// queue behind its upstream any more, or their answers would wait behind its unread result
/// (found by the Node binding's suite: neighbours stalled 4 s while 3 upstreams were idle).
#[test]
fn nobody_queues_behind_a_client_that_stopped_reading() {
    let (mut sim, c, u) = one_busy_upstream(2);
    sim.engine.send_blocked(Peer::Client(c[0]), sim.now);
    sim.drain();
    let out = sim.client_send(c[1], &[q("SELECT 2")]);
    assert!(
        out.upstream_msgs(u).is_empty(),
        "not behind the stalled answer"
    );
    assert_eq!(sim.engine.stats().routes[0].clients_waiting, 1);
    sim.engine.send_drained(Peer::Client(c[0]), sim.now);
    sim.drain();
    let out = sim.upstream_send(u, &select_answer("1"));
    assert_eq!(out.client_msgs(c[0]), select_answer("1"));
    assert_eq!(
        out.upstream_msgs(u),
        vec![q("SELECT 2")],
        "served when the upstream frees"
    );
}

#[test]
fn only_autocommit_units_queue_and_the_wait_queue_stays_in_order() {
    let (mut sim, c, u) = one_busy_upstream(3);
    let out = sim.client_send(c[1], &[q("BEGIN")]);
    assert!(out.to_upstreams.is_empty(), "a transaction waits");
    let out = sim.client_send(c[2], &[q("SELECT 3")]);
    assert!(
        out.to_upstreams.is_empty(),
        "no overtaking the waiting BEGIN"
    );
    let out = sim.upstream_send(u, &select_answer("1"));
    assert_eq!(out.upstream_msgs(u), vec![q("BEGIN")]);
    let out = sim.upstream_send(
        u,
        &[complete("BEGIN"), rfq(TransactionStatus::InTransaction)],
    );
    assert!(
        out.to_upstreams.is_empty(),
        "nothing queues behind a transaction"
    );
    let out = sim.client_send(c[1], &[q("COMMIT")]);
    assert_eq!(out.upstream_msgs(u), vec![q("COMMIT")]);
    let out = sim.upstream_send(u, &[complete("COMMIT"), rfq(TransactionStatus::Idle)]);
    assert_eq!(out.upstream_msgs(u), vec![q("SELECT 3")]);
    assert_eq!(sim.engine.stats().routes[0].pipelined, 0);
}

#[test]
fn clients_with_other_session_parameters_do_not_queue() {
    let mut sim = Sim::new(config(1, PoolMode::Transaction));
    let a = sim.ready_client();
    let (b, _) = sim.open_client(&[("application_name", "other")]);
    let out = sim.client_send(a, &[q("SELECT 1")]);
    let (u, _) = out.to_upstreams[0];
    let out = sim.client_send(b, &[q("SELECT 2")]);
    assert!(out.to_upstreams.is_empty());
    let out = sim.upstream_send(u, &select_answer("1"));
    let sent = out.upstream_msgs(u);
    assert_eq!(
        sent.len(),
        2,
        "parameters replayed, then the query: {sent:?}"
    );
    assert_eq!(sent[1], q("SELECT 2"));
}

#[test]
fn extended_units_queue_and_an_error_stays_in_its_own_unit() {
    let (mut sim, c, u) = one_busy_upstream(2);
    let unit = [
        parse_msg("", "SELECT $1"),
        bind_msg(""),
        execute_msg(),
        FrontendMessage::Sync,
    ];
    let out = sim.client_send(c[1], &unit);
    assert_eq!(out.upstream_msgs(u), unit.to_vec());
    let mut answers = vec![error("42601", "syntax error"), rfq(TransactionStatus::Idle)];
    answers.extend([
        BackendMessage::ParseComplete,
        BackendMessage::BindComplete,
        complete("SELECT 1"),
        rfq(TransactionStatus::Idle),
    ]);
    let out = sim.upstream_send(u, &answers);
    assert_eq!(out.client_msgs(c[0]), answers[..2].to_vec());
    assert_eq!(out.client_msgs(c[1]), answers[2..].to_vec());
}

#[test]
fn a_queued_client_that_leaves_gets_nothing_and_the_rest_go_on() {
    let (mut sim, c, u) = one_busy_upstream(3);
    sim.client_send(c[1], &[q("SELECT 2")]);
    sim.client_send(c[2], &[q("SELECT 3")]);
    sim.engine.client_closed(c[1], sim.now);
    sim.drain();
    let answers = [select_answer("1"), select_answer("2"), select_answer("3")].concat();
    let out = sim.upstream_send(u, &answers);
    assert_eq!(out.client_msgs(c[0]), select_answer("1"));
    assert!(out.client_msgs(c[1]).is_empty());
    assert_eq!(out.client_msgs(c[2]), select_answer("3"));
    assert!(out.closed_upstreams.is_empty());
    let stats = sim.engine.stats().routes[0];
    assert_eq!((stats.upstreams_idle, stats.upstreams_active), (1, 0));
    assert_eq!(stats.clients_active, 0);
}

#[test]
fn the_running_client_leaving_does_not_cost_the_queued_ones_their_answers() {
    let (mut sim, c, u) = one_busy_upstream(2);
    sim.client_send(c[1], &[q("SELECT 2")]);
    sim.engine.client_closed(c[0], sim.now);
    let out = sim.drain();
    assert!(out.closed_upstreams.is_empty(), "the upstream is kept");
    let answers = [select_answer("1"), select_answer("2")].concat();
    let out = sim.upstream_send(u, &answers);
    assert_eq!(out.client_msgs(c[1]), select_answer("2"));
    let stats = sim.engine.stats().routes[0];
    assert_eq!((stats.upstreams_idle, stats.upstreams_active), (1, 0));
    assert_eq!(stats.clients_active, 0);
}

/// The error and ReadyForQuery a request gets when its upstream is lost.
fn lost_answer(msgs: &[BackendMessage]) -> bool {
    matches!(msgs, [BackendMessage::ErrorResponse(f), BackendMessage::ReadyForQuery(TransactionStatus::Idle)]
        if f.code().map(|c| &c[..]) == Some(&b"08006"[..]))
}

/// An upstream lost under autocommit requests costs each client with a request on it (the
/// one running, the ones pipelined behind) an error for that request, not its connection; the
/// next request is served once the pool refilled, with the session's settings.
#[test]
fn a_lost_upstream_costs_its_clients_one_error_not_their_connection() {
    let (mut sim, c, u) = one_busy_upstream(3);
    sim.client_send(c[1], &[q("SELECT 2")]);
    sim.engine.upstream_closed(u, sim.now);
    let out = sim.drain();
    assert!(out.closed_clients.is_empty(), "{out:?}");
    for id in &c[..2] {
        assert!(
            lost_answer(&out.client_msgs(*id)),
            "{:?}",
            out.client_msgs(*id)
        );
    }
    assert!(
        out.client_msgs(c[2]).is_empty(),
        "an idle client is untouched"
    );
    let stats = sim.engine.stats().routes[0];
    assert_eq!(
        (stats.clients_active, stats.clients, stats.upstreams),
        (0, 3, 0)
    );
    // The next request waits for a new upstream and is answered on it.
    let out = sim.client_send(c[0], &[q("SELECT 3")]);
    let v = out.connects[0];
    let out = sim.login_upstream(v, 8);
    assert_eq!(out.upstream_msgs(v), vec![q("SELECT 3")], "{out:?}");
    let out = sim.upstream_send(v, &select_answer("3"));
    assert_eq!(out.client_msgs(c[0]), select_answer("3"));
}

/// Requests a client had sent upstream each get the error; what it sent behind them that was
/// not sent anywhere yet (held while it was pipelined behind another client) runs on the next
/// upstream.
#[test]
fn requests_not_sent_yet_wait_for_the_pool_to_refill() {
    let (mut sim, c, u) = one_busy_upstream(2);
    sim.client_send(c[1], &[q("SELECT 2")]);
    let out = sim.client_send(c[1], &[q("SELECT 3")]);
    assert!(
        out.upstream_msgs(u).is_empty(),
        "held behind its pipelined request"
    );
    sim.engine.upstream_closed(u, sim.now);
    let out = sim.drain();
    let errors = |id| {
        out.client_msgs(id)
            .iter()
            .filter(|m| matches!(m, BackendMessage::ErrorResponse(_)))
            .count()
    };
    assert_eq!((errors(c[0]), errors(c[1])), (1, 1), "{out:?}");
    let v = out.connects[0];
    let out = sim.login_upstream(v, 8);
    assert_eq!(out.upstream_msgs(v), vec![q("SELECT 3")]);
}

/// An extended-protocol unit gets one error and the ReadyForQuery of its Sync.
#[test]
fn a_lost_extended_unit_gets_one_error_and_its_ready_for_query() {
    let mut sim = Sim::new(config(1, PoolMode::Transaction));
    let a = sim.ready_client();
    let out = sim.client_send(
        a,
        &[
            parse_msg("", "SELECT 1"),
            bind_msg(""),
            execute_msg(),
            FrontendMessage::Sync,
        ],
    );
    let (u, _) = out.to_upstreams[0];
    sim.upstream_send(u, &[BackendMessage::ParseComplete]);
    sim.engine.upstream_closed(u, sim.now);
    let out = sim.drain();
    assert_eq!(out.client_msgs(a).len(), 2, "{:?}", out.client_msgs(a));
    assert!(lost_answer(&out.client_msgs(a)));
    assert!(out.closed_clients.is_empty());
}

/// Where session state lived on the server (a pinned client), or with
/// `close_on_upstream_loss`, the client is told and closed, as a direct connection would be.
/// (A lost transaction: tests/engine_pg_lost_tx.rs.)
#[test]
fn a_lost_pinned_session_ends_the_connection() {
    let mut sim = Sim::new(config(1, PoolMode::Transaction));
    let a = sim.ready_client();
    let out = sim.client_send(a, &[q("LISTEN things")]);
    let (u, _) = out.to_upstreams[0];
    sim.upstream_send(u, &[complete("LISTEN"), rfq(TransactionStatus::Idle)]);
    sim.client_send(a, &[q("SELECT 2")]);
    sim.engine.upstream_closed(u, sim.now);
    assert_eq!(sim.drain().closed_clients, vec![a], "its LISTEN is gone");

    let mut cfg = config(1, PoolMode::Transaction);
    cfg.close_on_upstream_loss = true;
    let mut sim = Sim::new(cfg);
    let a = sim.ready_client();
    let out = sim.client_send(a, &[q("SELECT 1")]);
    let (u, _) = out.to_upstreams[0];
    sim.engine.upstream_closed(u, sim.now);
    let out = sim.drain();
    assert_eq!(out.closed_clients, vec![a]);
    assert!(matches!(
        out.client_msgs(a).last(),
        Some(BackendMessage::ErrorResponse(f)) if f.severity().map(|s| &s[..]) == Some(&b"FATAL"[..])
    ));
}

#[test]
fn a_head_left_inside_a_transaction_ends_the_connection_not_the_isolation() {
    let (mut sim, c, u) = one_busy_upstream(2);
    sim.client_send(c[1], &[q("SELECT 2")]);
    let out = sim.upstream_send(
        u,
        &[complete("SELECT 1"), rfq(TransactionStatus::InTransaction)],
    );
    assert!(out.closed_upstreams.contains(&u));
    assert!(
        out.closed_clients.contains(&c[1]),
        "its query ran in a stranger's transaction"
    );
}

#[test]
fn a_cancel_for_a_queued_client_is_sent_when_its_query_starts() {
    let mut sim = Sim::new(config(1, PoolMode::Transaction));
    let a = sim.ready_client();
    let (b, welcome) = sim.open_client(&[]);
    let (pid, key) = cancel_key(&welcome, b);
    let out = sim.client_send(a, &[q("SELECT 1")]);
    let (u, _) = out.to_upstreams[0];
    sim.client_send(b, &[q("SELECT pg_sleep(10)")]);
    assert!(sim.cancel(pid, key).is_empty(), "a's query runs now");
    let out = sim.upstream_send(u, &select_answer("1"));
    assert_eq!(out.cancels.len(), 1, "b's query runs now");
    let c = sim.ready_client();
    let out = sim.client_send(c, &[q("SELECT 3")]);
    assert!(
        out.to_upstreams.is_empty(),
        "nothing queues behind a cancelled query"
    );
}

/// Two clients on a pool of one: `a` (whose cancel key is returned) runs `SELECT 1`, `b`'s
/// `SELECT 2` is pipelined behind it, then `a`'s cancel goes out.
fn follower_behind_a_cancel() -> (Sim, ClientId, ClientId, UpstreamId) {
    let mut sim = Sim::new(config(1, PoolMode::Transaction));
    let (a, out) = sim.open_client(&[]);
    let welcome = sim.login_upstream(out.connects[0], 77);
    let (pid, key) = cancel_key(&welcome, a);
    let b = sim.ready_client();
    let out = sim.client_send(a, &[q("SELECT 1")]);
    let (u, _) = out.to_upstreams[0];
    let out = sim.client_send(b, &[q("SELECT 2")]);
    assert_eq!(out.upstream_msgs(u), vec![q("SELECT 2")], "pipelined");
    assert_eq!(sim.cancel(pid, key).len(), 1);
    (sim, a, b, u)
}

/// A cancel for the running unit can land after it ended, while the unit pipelined behind it
/// runs: that follower must not see the error a cancel it never sent caused. Its answers are
/// held back until its unit ends; the unit then runs again, and only that answer reaches it.
#[test]
fn a_late_cancel_that_hits_a_follower_is_undone_by_running_its_unit_again() {
    let (mut sim, a, b, u) = follower_behind_a_cancel();
    let out = sim.upstream_send(u, &select_answer("1"));
    assert_eq!(
        out.client_msgs(a),
        select_answer("1"),
        "a's query ended first"
    );
    let canceled = error("57014", "canceling statement due to user request");
    let out = sim.upstream_send(u, &[canceled, rfq(TransactionStatus::Idle)]);
    assert!(
        out.client_msgs(b).is_empty(),
        "b never sees another's cancel"
    );
    assert!(
        out.to_upstreams.is_empty(),
        "the upstream waits for the cancel to be done"
    );
    sim.engine.cancel_done(u, sim.now);
    let out = sim.drain();
    assert_eq!(out.upstream_msgs(u), vec![q("SELECT 2")], "run again");
    let out = sim.upstream_send(u, &select_answer("2"));
    assert_eq!(out.client_msgs(b), select_answer("2"));
    assert_eq!(sim.engine.stats().routes[0].pipelined_retries, 1);
}

/// The cancel stopped the query it was meant for: the follower's answers, held back meanwhile,
/// reach it when its unit ends.
#[test]
fn a_follower_the_cancel_missed_gets_its_held_answers() {
    let (mut sim, a, b, u) = follower_behind_a_cancel();
    let canceled = error("57014", "canceling statement due to user request");
    let out = sim.upstream_send(u, &[canceled.clone(), rfq(TransactionStatus::Idle)]);
    assert_eq!(
        out.client_msgs(a),
        vec![canceled, rfq(TransactionStatus::Idle)],
        "the cancelled query is a's own"
    );
    assert!(out.client_msgs(b).is_empty());
    let out = sim.upstream_send(u, &select_answer("2"));
    assert_eq!(out.client_msgs(b), select_answer("2"));
    assert_eq!(sim.engine.stats().routes[0].pipelined_retries, 0);
}

#[test]
fn input_of_the_running_client_waits_behind_queued_ones() {
    let (mut sim, c, u) = one_busy_upstream(2);
    sim.client_send(c[1], &[q("SELECT 2")]);
    let out = sim.client_send(c[0], &[q("SELECT 3")]);
    assert!(out.to_upstreams.is_empty(), "it would overtake c1's query");
    let out = sim.upstream_send(u, &select_answer("1"));
    assert_eq!(
        out.upstream_msgs(u),
        vec![q("SELECT 3")],
        "queued behind c1's"
    );
    let answers = [select_answer("2"), select_answer("3")].concat();
    let out = sim.upstream_send(u, &answers);
    assert_eq!(out.client_msgs(c[1]), select_answer("2"));
    assert_eq!(out.client_msgs(c[0]), select_answer("3"));
}

#[test]
fn pipeline_depth_zero_turns_queueing_off() {
    let mut cfg = config(1, PoolMode::Transaction);
    cfg.pipeline_depth = 0;
    let mut sim = Sim::new(cfg);
    let a = sim.ready_client();
    let b = sim.ready_client();
    sim.client_send(a, &[q("SELECT 1")]);
    let out = sim.client_send(b, &[q("SELECT 2")]);
    assert!(out.to_upstreams.is_empty());
}

#[test]
fn input_a_waiting_client_cannot_pass_on_counts_as_backlog() {
    let (mut sim, c, _) = one_busy_upstream(2);
    assert_eq!(
        sim.engine.client_backlog(c[0]),
        0,
        "its input went upstream"
    );
    let mut partial = enc_front(&[q("SELECT 2")]);
    let mut rest = partial.split_off(partial.len() - 1);
    sim.engine.client_data(c[1], partial, sim.now);
    assert_eq!(
        sim.engine.client_backlog(c[1]),
        0,
        "a partial message may grow"
    );
    rest.extend_from_slice(&enc_front(&[q("BEGIN")]));
    sim.engine.client_data(c[1], rest, sim.now);
    let waiting = sim.engine.client_backlog(c[1]);
    assert_eq!(waiting, enc_front(&[q("SELECT 2"), q("BEGIN")]).len());
}

#[test]
fn nobody_queues_behind_a_request_that_runs_long() {
    let (mut sim, c, u) = one_busy_upstream(2);
    sim.now += 10;
    let out = sim.client_send(c[1], &[q("SELECT 2")]);
    assert!(out.to_upstreams.is_empty(), "c0's query may be a slow one");
    let out = sim.upstream_send(u, &select_answer("1"));
    assert_eq!(out.upstream_msgs(u), vec![q("SELECT 2")]);
    assert_eq!(sim.engine.stats().routes[0].pipelined, 0);
}

#[test]
fn a_waiter_that_left_does_not_hide_the_wait_deadline_of_those_behind_it() {
    let mut cfg = config(1, PoolMode::Transaction);
    cfg.wait_timeout_ms = 500;
    cfg.client_login_timeout_ms = 100;
    let mut sim = Sim::new(cfg);
    let [a, b, c] = [sim.ready_client(), sim.ready_client(), sim.ready_client()];
    sim.now += 200;
    sim.engine.handle_timeout(sim.now);
    sim.drain();
    let out = sim.client_send(a, &[q("BEGIN")]);
    let (u, _) = out.to_upstreams[0];
    sim.upstream_send(
        u,
        &[complete("BEGIN"), rfq(TransactionStatus::InTransaction)],
    );
    sim.client_send(b, &[q("SELECT 2")]);
    sim.now += 10;
    sim.client_send(c, &[q("SELECT 3")]);
    sim.engine.client_closed(b, sim.now);
    sim.drain();
    assert_eq!(
        sim.engine.poll_timeout(),
        Some(sim.now + 500),
        "c's wait ends then"
    );
}

#[test]
fn a_timeout_of_zero_means_no_limit() {
    let mut cfg = config(1, PoolMode::Transaction);
    cfg.connect_timeout_ms = 0;
    cfg.wait_timeout_ms = 0;
    cfg.client_login_timeout_ms = 0;
    cfg.idle_timeout_ms = 0;
    cfg.server_lifetime_ms = 0;
    let mut sim = Sim::new(cfg);
    let logging_in = sim.engine.client_open(Protocol::Postgres, sim.now);
    let (a, out) = sim.open_client(&[]);
    let u = out.connects[0];
    assert_eq!(sim.engine.poll_timeout(), None, "nothing is armed");
    sim.engine.handle_timeout(sim.now + 86_400_000);
    let out = sim.drain();
    assert!(
        out.closed_upstreams.is_empty(),
        "the connect does not expire"
    );
    assert!(
        out.closed_clients.is_empty(),
        "{logging_in:?} and {a:?} stay"
    );
    sim.login_upstream(u, 1);
    let b = sim.ready_client();
    sim.client_send(a, &[q("BEGIN")]);
    sim.client_send(b, &[q("SELECT 1")]);
    assert_eq!(sim.engine.poll_timeout(), None, "a wait without limit");
    sim.engine.handle_timeout(sim.now + 86_400_000);
    assert!(sim.drain().closed_clients.is_empty(), "b keeps waiting");
}

fn pause(peer: Peer) -> Action {
    Action::PauseReading { peer }
}

fn resume(peer: Peer) -> Action {
    Action::ResumeReading { peer }
}

#[test]
fn a_client_whose_held_input_grows_too_large_is_paused_until_it_is_passed_on() {
    let mut cfg = config(1, PoolMode::Transaction);
    cfg.client_backlog_limit = 64;
    cfg.pipeline_depth = 0;
    let mut sim = Sim::new(cfg);
    let a = sim.ready_client();
    let b = sim.ready_client();
    let out = sim.client_send(a, &[q("BEGIN")]);
    let (u, _) = out.to_upstreams[0];
    sim.upstream_send(
        u,
        &[complete("BEGIN"), rfq(TransactionStatus::InTransaction)],
    );
    let out = sim.client_send(b, &[q("SELECT 1")]);
    assert!(out.flow.is_empty(), "a small backlog is fine");
    let long = format!("SELECT '{}'", "x".repeat(100));
    let out = sim.client_send(b, &[q(&long)]);
    assert_eq!(out.flow, vec![pause(Peer::Client(b))]);
    let out = sim.client_send(b, &[q("SELECT 3")]);
    assert!(out.flow.is_empty(), "paused once");
    sim.client_send(a, &[q("COMMIT")]);
    let out = sim.upstream_send(u, &[complete("COMMIT"), rfq(TransactionStatus::Idle)]);
    assert_eq!(out.upstream_msgs(u).len(), 3, "b's requests went upstream");
    assert_eq!(out.flow, vec![resume(Peer::Client(b))]);
}

#[test]
fn a_blocked_client_pauses_the_upstream_feeding_it_until_it_drains_or_leaves() {
    let mut sim = Sim::new(config(1, PoolMode::Transaction));
    let a = sim.ready_client();
    let out = sim.client_send(a, &[q("SELECT big")]);
    let (u, _) = out.to_upstreams[0];
    sim.engine.send_blocked(Peer::Client(a), sim.now);
    assert_eq!(sim.drain().flow, vec![pause(Peer::Upstream(u))]);
    sim.engine.send_blocked(Peer::Client(a), sim.now);
    assert!(sim.drain().flow.is_empty(), "paused once");
    sim.engine.send_drained(Peer::Client(a), sim.now);
    assert_eq!(sim.drain().flow, vec![resume(Peer::Upstream(u))]);
    sim.engine.send_drained(Peer::Client(a), sim.now);
    assert!(sim.drain().flow.is_empty(), "resumed once");

    sim.engine.send_blocked(Peer::Upstream(u), sim.now);
    assert_eq!(sim.drain().flow, vec![pause(Peer::Client(a))]);
    sim.engine.send_drained(Peer::Upstream(u), sim.now);
    assert_eq!(sim.drain().flow, vec![resume(Peer::Client(a))]);

    sim.engine.send_blocked(Peer::Client(a), sim.now);
    sim.drain();
    sim.engine.client_closed(a, sim.now);
    let out = sim.drain();
    assert!(
        out.flow.contains(&resume(Peer::Upstream(u))),
        "the upstream is not left paused for a client that is gone"
    );
}

#[test]
fn an_idle_client_blocking_pauses_nothing() {
    let mut sim = Sim::new(config(1, PoolMode::Transaction));
    let a = sim.ready_client();
    sim.engine.send_blocked(Peer::Client(a), sim.now);
    sim.engine.send_drained(Peer::Client(a), sim.now);
    assert!(sim.drain().flow.is_empty());
}

#[test]
fn a_reload_keeps_clients_and_applies_routes_and_users() {
    let mut sim = Sim::new(config(2, PoolMode::Transaction));
    let a = sim.ready_client();
    let out = sim.client_send(a, &[q("BEGIN")]);
    let (busy, _) = out.to_upstreams[0];
    sim.upstream_send(
        busy,
        &[complete("BEGIN"), rfq(TransactionStatus::InTransaction)],
    );

    // Refused: nothing changes.
    let mut bad = config(2, PoolMode::Transaction);
    bad.routes.clear();
    assert!(sim.engine.reload(bad, sim.now).is_err());

    // The route moves to another server; a second route and a user are added.
    let mut next = config(2, PoolMode::Transaction);
    next.routes[0].target = "127.0.0.1:6543".into();
    let mut reports = Route::new(Protocol::Postgres, "reports", "127.0.0.1:5432", "ro");
    reports.pool_size = 1;
    next.routes.push(reports);
    next.users.push(User::new("bob", "pw"));
    sim.engine.reload(next, sim.now).unwrap();
    assert!(
        sim.drain().closed_clients.is_empty(),
        "no client is dropped"
    );
    assert_eq!(sim.engine.config().routes.len(), 2);

    // a's transaction goes on where it runs; its connection closes once a is done with it.
    let out = sim.client_send(a, &[q("COMMIT")]);
    assert_eq!(out.upstream_msgs(busy), vec![q("COMMIT")]);
    let out = sim.upstream_send(busy, &[complete("COMMIT"), rfq(TransactionStatus::Idle)]);
    assert!(is_ready(&out.client_msgs(a)));
    assert_eq!(
        out.closed_upstreams,
        vec![busy],
        "the old server's connection is retired"
    );

    // The route was dropped: new logins are refused; a stays until it leaves.
    let mut last = config(2, PoolMode::Transaction);
    last.routes[0].database = "other".into();
    sim.engine.reload(last, sim.now).unwrap();
    let (late, out) = sim.open_client(&[]);
    assert_eq!(out.closed_clients, vec![late]);
    let out = sim.client_send(a, &[q("SELECT 1")]);
    assert!(out.closed_clients.is_empty());
}

/// A serverless driver's pipelined connect sends startup, a cleartext password and its first
/// query at once. Under SCRAM the password is not a SASL answer: the client gets a clear error
/// at once (PostgreSQL's words), never a hang.
#[test]
fn a_pipelined_cleartext_password_under_scram_gets_a_clear_error() {
    let mut cfg = config(1, PoolMode::Transaction);
    cfg.client_auth = ClientAuth::ScramSha256;
    let mut sim = Sim::new(cfg);
    sim.ready_client();
    let a = sim.engine.client_open(Protocol::Postgres, sim.now);
    let mut wire = startup_packet(&[]);
    muxql::pg::frontend::encode_password_message(&mut wire, b"pw").unwrap();
    wire.extend_from_slice(&enc_front(&[q("SELECT 1")]));
    let out = sim.client_send_raw(a, wire);
    assert_eq!(out.closed_clients, vec![a]);
    match out.client_msgs(a).last() {
        Some(BackendMessage::ErrorResponse(f)) => {
            assert_eq!(f.code().map(|c| &c[..]), Some(&b"08P01"[..]));
            let message = String::from_utf8_lossy(f.message().map(|m| &m[..]).unwrap_or_default());
            assert!(
                message.contains("invalid SASL authentication mechanism"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
}

/// Sessions ended with an error are counted by kind, and every wait for an upstream lands in
/// the wait histogram.
#[test]
fn errors_are_counted_by_kind_and_waits_in_the_histogram() {
    let mut cfg = config(1, PoolMode::Transaction);
    cfg.client_auth = ClientAuth::Cleartext;
    cfg.wait_timeout_ms = 500;
    let mut sim = Sim::new(cfg);
    let login = |sim: &mut Sim, password: &[u8]| {
        let id = sim.engine.client_open(Protocol::Postgres, sim.now);
        sim.client_send_raw(id, startup_packet(&[]));
        let mut wire = BytesMut::new();
        muxql::pg::frontend::encode_password_message(&mut wire, password).unwrap();
        let out = sim.client_send_raw(id, wire);
        for u in out.connects.clone() {
            sim.login_upstream(u, 9);
        }
        id
    };
    login(&mut sim, b"wrong");
    let a = login(&mut sim, b"pw");
    let b = login(&mut sim, b"pw");
    let garbage = sim.engine.client_open(Protocol::Postgres, sim.now);
    sim.client_send_raw(garbage, BytesMut::from(&b"\0\0\0\x08\0\x09\0\0"[..]));
    sim.client_send(a, &[q("BEGIN")]);
    let u = sim.engine.stats().routes[0].upstreams;
    assert_eq!(u, 1);
    sim.client_send(b, &[q("SELECT 1")]);
    let deadline = sim.engine.poll_timeout().unwrap();
    sim.engine.handle_timeout(deadline);
    sim.drain();
    let stats = sim.engine.stats();
    assert_eq!(
        (
            stats.errors.auth,
            stats.errors.protocol,
            stats.errors.timeout,
            stats.errors.upstream
        ),
        (1, 1, 1, 0),
        "{:?}",
        stats.errors
    );
    // One wait served at once (a's BEGIN), one that timed out (not served: not counted).
    assert_eq!(stats.routes[0].wait_histogram.iter().sum::<u64>(), 1);
    assert_eq!(
        stats.routes[0].wait_histogram[0], 1,
        "a 0 ms wait is in the first bucket"
    );
}
