//! Deterministic Engine tests of prepared statements across pooled upstreams: named statements
//! shared per SQL text, the unnamed statement, plan changes, and what each client sees of them.

mod pg_sim;

use pg_sim::*;

/// A client with statement `s1` prepared on the only upstream, which is returned.
fn client_with_prepared_s1(sim: &mut Sim) -> (ClientId, UpstreamId) {
    let a = sim.ready_client();
    let out = sim.client_send(a, &[parse_msg("s1", "SELECT 1"), FrontendMessage::Sync]);
    let (u, _) = out.to_upstreams[0];
    sim.upstream_send(
        u,
        &[BackendMessage::ParseComplete, rfq(TransactionStatus::Idle)],
    );
    (a, u)
}

#[test]
fn named_statements_are_pooled_and_reprepared_lazily() {
    let mut sim = Sim::new(config(2, PoolMode::Transaction));
    let a = sim.ready_client();
    let parse = |name: &str, sql: &str| {
        FrontendMessage::Parse(Parse {
            name: Bytes::copy_from_slice(name.as_bytes()),
            query: Bytes::copy_from_slice(sql.as_bytes()),
            param_types: vec![],
        })
    };
    let bind = |stmt: &str| {
        FrontendMessage::Bind(Bind {
            portal: Bytes::new(),
            statement: Bytes::copy_from_slice(stmt.as_bytes()),
            param_formats: vec![],
            params: vec![],
            result_formats: vec![],
        })
    };
    let exec = FrontendMessage::Execute(Execute {
        portal: Bytes::new(),
        max_rows: 0,
    });
    let out = sim.client_send(a, &[parse("s1", "SELECT 1"), FrontendMessage::Sync]);
    let (u1, _) = out.to_upstreams[0];
    let sent = out.upstream_msgs(u1);
    assert!(matches!(&sent[0], FrontendMessage::Parse(p) if p.name.starts_with(b"muxql_")));
    let out = sim.upstream_send(
        u1,
        &[BackendMessage::ParseComplete, rfq(TransactionStatus::Idle)],
    );
    assert_eq!(
        out.client_msgs(a),
        vec![BackendMessage::ParseComplete, rfq(TransactionStatus::Idle)]
    );

    // Hold u1 with another client's transaction so that `a` lands on a second upstream.
    let b = sim.ready_client();
    let out = sim.client_send(b, &[q("BEGIN")]);
    assert_eq!(out.to_upstreams[0].0, u1);
    sim.upstream_send(
        u1,
        &[complete("BEGIN"), rfq(TransactionStatus::InTransaction)],
    );
    let out = sim.client_send(a, &[bind("s1"), exec.clone(), FrontendMessage::Sync]);
    let u2 = out.connects[0];
    let out = sim.login_upstream(u2, 2);
    let sent = out.upstream_msgs(u2);
    assert!(
        matches!(&sent[0], FrontendMessage::Parse(p) if p.name.starts_with(b"muxql_")),
        "re-Parse first"
    );
    assert!(matches!(&sent[1], FrontendMessage::Bind(b) if b.statement.starts_with(b"muxql_")));
    let out = sim.upstream_send(
        u2,
        &[
            BackendMessage::ParseComplete,
            BackendMessage::BindComplete,
            complete("SELECT 1"),
            rfq(TransactionStatus::Idle),
        ],
    );
    assert_eq!(
        out.client_msgs(a),
        vec![
            BackendMessage::BindComplete,
            complete("SELECT 1"),
            rfq(TransactionStatus::Idle)
        ],
        "the injected ParseComplete is swallowed"
    );

    // Parse of the same text under another client's name is answered locally on u2; Close too.
    let c = sim.ready_client();
    let out = sim.client_send(c, &[parse("mine", "SELECT 1"), FrontendMessage::Sync]);
    let (u, _) = out.to_upstreams[0];
    assert_eq!(u, u2);
    assert_eq!(out.upstream_msgs(u2), vec![FrontendMessage::Sync]);
    assert_eq!(
        out.client_msgs(c),
        vec![BackendMessage::ParseComplete],
        "answered at once, in order"
    );
    let out = sim.upstream_send(u2, &[rfq(TransactionStatus::Idle)]);
    assert_eq!(out.client_msgs(c), vec![rfq(TransactionStatus::Idle)]);
    let close = FrontendMessage::Close(Close {
        kind: TargetKind::Statement,
        name: Bytes::from_static(b"mine"),
    });
    let describe = FrontendMessage::Describe(Describe {
        kind: TargetKind::Portal,
        name: Bytes::new(),
    });
    let out = sim.client_send(c, &[describe, close, FrontendMessage::Sync]);
    assert_eq!(out.upstream_msgs(u2).len(), 2, "Close answered locally");
    assert!(
        out.client_msgs(c).is_empty(),
        "CloseComplete waits for the Describe's answer"
    );
    let out = sim.upstream_send(u2, &[BackendMessage::NoData, rfq(TransactionStatus::Idle)]);
    assert_eq!(
        out.client_msgs(c),
        vec![
            BackendMessage::NoData,
            BackendMessage::CloseComplete,
            rfq(TransactionStatus::Idle)
        ]
    );
}

#[test]
fn an_error_drops_local_answers_queued_behind_it_until_sync() {
    let mut sim = Sim::new(config(1, PoolMode::Transaction));
    let (a, u) = client_with_prepared_s1(&mut sim);
    let close = FrontendMessage::Close(Close {
        kind: TargetKind::Statement,
        name: Bytes::from_static(b"s1"),
    });
    let out = sim.client_send(
        a,
        &[bind_msg("s1"), execute_msg(), close, FrontendMessage::Sync],
    );
    assert!(out.client_msgs(a).is_empty());
    let out = sim.upstream_send(
        u,
        &[error("22P02", "bad input"), rfq(TransactionStatus::Idle)],
    );
    let msgs = out.client_msgs(a);
    assert!(
        matches!(
            msgs[..],
            [
                BackendMessage::ErrorResponse(_),
                BackendMessage::ReadyForQuery(_)
            ]
        ),
        "{msgs:?}"
    );
    assert_eq!(
        sim.engine.stats().routes[0].upstreams_idle,
        1,
        "released after the Sync"
    );
}

/// What a client sees of a statement whose result type changed (pgx's statement cache
/// after `ALTER TABLE ... ADD COLUMN`): on a direct connection each connection's own
/// statement fails with 0A000 until the driver prepares it again. The first failure makes the
/// shared statement prepared afresh; every other client that prepared it before gets the same
/// 0A000 (raised by the server in place of its Bind) instead of binding the new statement
/// with its old idea of the columns, until it prepares the statement again.
#[test]
fn a_changed_plan_fails_each_clients_own_statement_until_it_prepares_it_again() {
    let mut sim = Sim::new(config(1, PoolMode::Transaction));
    let (a, u) = client_with_prepared_s1(&mut sim);
    let b = sim.ready_client();
    sim.client_send(b, &[parse_msg("s1", "SELECT 1"), FrontendMessage::Sync]);
    sim.upstream_send(u, &[rfq(TransactionStatus::Idle)]);
    let unit = [bind_msg("s1"), execute_msg(), FrontendMessage::Sync];
    sim.client_send(a, &unit);
    let changed = error("0A000", "cached plan must not change result type");
    sim.upstream_send(u, &[changed, rfq(TransactionStatus::Idle)]);

    for c in [a, b] {
        let out = sim.client_send(c, &unit);
        let sent = out.upstream_msgs(u);
        match &sent[..] {
            [FrontendMessage::Parse(p), FrontendMessage::Bind(bind), FrontendMessage::Execute(_), FrontendMessage::Execute(_), FrontendMessage::Sync] =>
            {
                assert!(p.name.is_empty() && bind.statement.is_empty());
                let sql = String::from_utf8_lossy(&p.query);
                assert!(sql.starts_with("DO ") && sql.contains("0A000"), "{sql}");
            }
            other => panic!("{other:?}"),
        }
        let raised = error("0A000", "cached plan must not change result type");
        let out = sim.upstream_send(
            u,
            &[
                BackendMessage::ParseComplete,
                BackendMessage::BindComplete,
                raised.clone(),
                rfq(TransactionStatus::Idle),
            ],
        );
        assert_eq!(
            out.client_msgs(c),
            vec![raised, rfq(TransactionStatus::Idle)]
        );
    }

    // Closed and prepared again (as pgx does), it runs the new statement: a prepares it on the
    // upstream, b shares it.
    let again = [
        close_statement("s1"),
        parse_msg("s1", "SELECT 1"),
        bind_msg("s1"),
        execute_msg(),
        FrontendMessage::Sync,
    ];
    let out = sim.client_send(a, &again);
    let sent = out.upstream_msgs(u);
    let fresh = match (&sent[0], &sent[1]) {
        (FrontendMessage::Parse(p), FrontendMessage::Bind(bind)) => {
            assert_eq!(
                p.name,
                Bytes::from_static(b"muxql_2"),
                "a new server-side name"
            );
            assert_eq!(bind.statement, p.name);
            p.name.clone()
        }
        other => panic!("{other:?}"),
    };
    sim.upstream_send(
        u,
        &[
            BackendMessage::ParseComplete,
            BackendMessage::BindComplete,
            complete("SELECT 1"),
            rfq(TransactionStatus::Idle),
        ],
    );
    let out = sim.client_send(b, &again);
    match &out.upstream_msgs(u)[0] {
        FrontendMessage::Bind(bind) => assert_eq!(bind.statement, fresh),
        other => panic!("{other:?}"),
    }
}

#[test]
fn another_clients_unnamed_statement_is_closed_before_a_bind_can_run_it() {
    let mut sim = Sim::new(config(1, PoolMode::Transaction));
    let a = sim.ready_client();
    let b = sim.ready_client();
    let out = sim.client_send(
        a,
        &[parse_msg("", "SELECT 'a secret'"), FrontendMessage::Sync],
    );
    let (u, _) = out.to_upstreams[0];
    sim.upstream_send(
        u,
        &[BackendMessage::ParseComplete, rfq(TransactionStatus::Idle)],
    );
    let unit = [bind_msg(""), execute_msg(), FrontendMessage::Sync];
    let out = sim.client_send(b, &unit);
    let close = FrontendMessage::Close(Close {
        kind: TargetKind::Statement,
        name: Bytes::new(),
    });
    assert_eq!(out.upstream_msgs(u), [vec![close], unit.to_vec()].concat());
    let missing = error("26000", "unnamed prepared statement does not exist");
    let out = sim.upstream_send(
        u,
        &[
            BackendMessage::CloseComplete,
            missing.clone(),
            rfq(TransactionStatus::Idle),
        ],
    );
    assert_eq!(
        out.client_msgs(b),
        vec![missing, rfq(TransactionStatus::Idle)]
    );
    let out = sim.client_send(
        a,
        &[
            parse_msg("", "SELECT 1"),
            bind_msg(""),
            FrontendMessage::Sync,
        ],
    );
    assert_eq!(
        out.upstream_msgs(u).len(),
        3,
        "its own unnamed statement binds as it is"
    );
}

#[test]
fn a_statement_whose_client_left_mid_request_is_freed() {
    let mut sim = Sim::new(config(1, PoolMode::Transaction));
    let a = sim.ready_client();
    sim.client_send(
        a,
        &[
            parse_msg("s1", "SELECT 1"),
            bind_msg("s1"),
            execute_msg(),
            FrontendMessage::Sync,
        ],
    );
    assert_eq!(sim.engine.stats().routes[0].statements, 1);
    sim.engine.client_closed(a, sim.now);
    sim.drain();
    assert_eq!(
        sim.engine.stats().routes[0].statements,
        0,
        "no client refers to the statement any more"
    );
}

/// A describe-then-execute driver (pgx's QueryExecModeDescribeExec): Parse of the unnamed
/// statement, Describe, Sync; then Bind, Execute, Sync in a second round trip, which lands on
/// another upstream. The client's unnamed statement is prepared there again first, so the
/// second round trip behaves as on a direct connection.
#[test]
fn an_unnamed_statement_follows_its_client_across_sync() {
    let mut sim = Sim::new(config(2, PoolMode::Transaction));
    let a = sim.ready_client();
    let b = sim.ready_client();
    let describe = FrontendMessage::Describe(Describe {
        kind: TargetKind::Statement,
        name: Bytes::new(),
    });
    let parse = parse_msg("", "SELECT $1::int");
    let out = sim.client_send(a, &[parse.clone(), describe, FrontendMessage::Sync]);
    let (u1, _) = out.to_upstreams[0];
    sim.upstream_send(
        u1,
        &[
            BackendMessage::ParseComplete,
            BackendMessage::ParameterDescription(vec![23]),
            BackendMessage::NoData,
            rfq(TransactionStatus::Idle),
        ],
    );
    // b holds the first upstream, so a's second round trip gets another.
    let out = sim.client_send(b, &[q("BEGIN")]);
    assert_eq!(out.to_upstreams[0].0, u1);
    sim.upstream_send(
        u1,
        &[complete("BEGIN"), rfq(TransactionStatus::InTransaction)],
    );
    let unit = [bind_msg(""), execute_msg(), FrontendMessage::Sync];
    let out = sim.client_send(a, &unit);
    let u2 = out.connects[0];
    let out = sim.login_upstream(u2, 43);
    assert_eq!(
        out.upstream_msgs(u2),
        [vec![parse], unit.to_vec()].concat(),
        "prepared again where it runs"
    );
    let out = sim.upstream_send(
        u2,
        &[
            BackendMessage::ParseComplete,
            BackendMessage::BindComplete,
            complete("SELECT 1"),
            rfq(TransactionStatus::Idle),
        ],
    );
    assert_eq!(
        out.client_msgs(a),
        vec![
            BackendMessage::BindComplete,
            complete("SELECT 1"),
            rfq(TransactionStatus::Idle)
        ],
        "the Parse it did not send is not answered"
    );
}

/// A simple Query ends the unnamed statement (PostgreSQL drops it), so a Bind after one is
/// not prepared again elsewhere: the server reports it missing, as it would directly.
#[test]
fn a_simple_query_ends_the_unnamed_statement() {
    let mut sim = Sim::new(config(2, PoolMode::Transaction));
    let a = sim.ready_client();
    let b = sim.ready_client();
    let out = sim.client_send(a, &[parse_msg("", "SELECT 1"), FrontendMessage::Sync]);
    let (u1, _) = out.to_upstreams[0];
    sim.upstream_send(
        u1,
        &[BackendMessage::ParseComplete, rfq(TransactionStatus::Idle)],
    );
    sim.client_send(a, &[q("SELECT 2")]);
    sim.upstream_send(u1, &select_answer("1"));
    sim.client_send(b, &[q("BEGIN")]);
    sim.upstream_send(
        u1,
        &[complete("BEGIN"), rfq(TransactionStatus::InTransaction)],
    );
    let unit = [bind_msg(""), execute_msg(), FrontendMessage::Sync];
    let out = sim.client_send(a, &unit);
    let u2 = out.connects[0];
    let out = sim.login_upstream(u2, 43);
    let close = FrontendMessage::Close(Close {
        kind: TargetKind::Statement,
        name: Bytes::new(),
    });
    assert_eq!(out.upstream_msgs(u2), [vec![close], unit.to_vec()].concat());
}

fn close_statement(name: &str) -> FrontendMessage {
    FrontendMessage::Close(Close {
        kind: TargetKind::Statement,
        name: Bytes::copy_from_slice(name.as_bytes()),
    })
}

/// pgjdbc runs `DEALLOCATE ALL` and then prepares its statements again. The client's own names
/// are gone, as on a direct connection; the server dropped muxql's shared statements too, so
/// they are prepared again for the next client that needs them (after a Close, in case the
/// DEALLOCATE failed and they survived) instead of failing with 26000.
#[test]
fn deallocate_all_drops_the_clients_names_and_shared_statements_are_prepared_again() {
    let mut sim = Sim::new(config(1, PoolMode::Transaction));
    let (a, u) = client_with_prepared_s1(&mut sim);
    let b = sim.ready_client();
    // b prepares the same text: it shares muxql_1, already on the upstream.
    let out = sim.client_send(b, &[parse_msg("t1", "SELECT 1"), FrontendMessage::Sync]);
    assert_eq!(out.upstream_msgs(u), vec![FrontendMessage::Sync]);
    sim.upstream_send(u, &[rfq(TransactionStatus::Idle)]);
    let out = sim.client_send(a, &[q("DEALLOCATE ALL")]);
    assert_eq!(out.upstream_msgs(u), vec![q("DEALLOCATE ALL")]);
    sim.upstream_send(
        u,
        &[complete("DEALLOCATE ALL"), rfq(TransactionStatus::Idle)],
    );
    let out = sim.client_send(b, &[bind_msg("t1"), execute_msg(), FrontendMessage::Sync]);
    let msgs = out.upstream_msgs(u);
    assert_eq!(msgs[0], close_statement("muxql_1"));
    assert_eq!(msgs[1], parse_msg("muxql_1", "SELECT 1"));
    assert_eq!(msgs[2], bind_msg("muxql_1"));
    let out = sim.upstream_send(
        u,
        &[
            BackendMessage::CloseComplete,
            BackendMessage::ParseComplete,
            BackendMessage::BindComplete,
            complete("SELECT 1"),
            rfq(TransactionStatus::Idle),
        ],
    );
    assert_eq!(
        out.client_msgs(b),
        vec![
            BackendMessage::BindComplete,
            complete("SELECT 1"),
            rfq(TransactionStatus::Idle)
        ]
    );
    let out = sim.client_send(a, &[bind_msg("s1"), execute_msg(), FrontendMessage::Sync]);
    assert_eq!(
        out.upstream_msgs(u)[0],
        bind_msg("s1"),
        "a's own name is gone: the server reports it missing, as it would directly"
    );
}

/// A statement dropped on an upstream behind muxql's back fails one Bind with 26000, then is
/// prepared again there instead of failing every Bind.
#[test]
fn a_statement_missing_on_its_upstream_is_prepared_again() {
    let mut sim = Sim::new(config(1, PoolMode::Transaction));
    let (a, u) = client_with_prepared_s1(&mut sim);
    let unit = [bind_msg("s1"), execute_msg(), FrontendMessage::Sync];
    sim.client_send(a, &unit);
    let missing = error("26000", "prepared statement \"muxql_1\" does not exist");
    sim.upstream_send(u, &[missing, rfq(TransactionStatus::Idle)]);
    let out = sim.client_send(a, &unit);
    assert_eq!(
        out.upstream_msgs(u),
        [vec![parse_msg("muxql_1", "SELECT 1")], unit.to_vec()]
            .concat()
            .into_iter()
            .map(|m| match m {
                FrontendMessage::Bind(_) => bind_msg("muxql_1"),
                other => other,
            })
            .collect::<Vec<_>>()
    );
}

/// The same schema change seen from an upstream that had not prepared the statement yet: the
/// statement prepared there has the new columns, and the client's Bind (result formats for
/// the old ones) fails with 08P01. On a direct connection the client's own statement would
/// fail with 0A000, so that is what it gets, and the statement is prepared afresh for all.
#[test]
fn a_result_type_change_found_by_a_lazy_prepare_is_reported_as_a_changed_plan() {
    let mut sim = Sim::new(config(2, PoolMode::Transaction));
    let (a, u1) = client_with_prepared_s1(&mut sim);
    let b = sim.ready_client();
    sim.client_send(b, &[q("BEGIN")]);
    sim.upstream_send(
        u1,
        &[complete("BEGIN"), rfq(TransactionStatus::InTransaction)],
    );
    let unit = [bind_msg("s1"), execute_msg(), FrontendMessage::Sync];
    let out = sim.client_send(a, &unit);
    let u2 = out.connects[0];
    let out = sim.login_upstream(u2, 43);
    assert_eq!(out.upstream_msgs(u2)[0], parse_msg("muxql_1", "SELECT 1"));
    let formats = error(
        "08P01",
        "bind message has 2 result formats but query has 3 columns",
    );
    let out = sim.upstream_send(
        u2,
        &[
            BackendMessage::ParseComplete,
            formats,
            rfq(TransactionStatus::Idle),
        ],
    );
    assert_eq!(
        out.client_msgs(a),
        vec![
            error("0A000", "cached plan must not change result type"),
            rfq(TransactionStatus::Idle)
        ]
    );
    let out = sim.client_send(
        a,
        &[
            close_statement("s1"),
            parse_msg("s1", "SELECT 1"),
            bind_msg("s1"),
            execute_msg(),
            FrontendMessage::Sync,
        ],
    );
    match &out.upstream_msgs(u2)[0] {
        FrontendMessage::Parse(p) => assert_ne!(&p.name[..], b"muxql_1", "prepared afresh"),
        other => panic!("{other:?}"),
    }
}

/// Binds of the old statement still in flight on other upstreams fail after the change was
/// noticed: they do not prepare the statement afresh a second time, which would make the
/// clients that already prepared it again see 0A000 twice.
#[test]
fn a_result_type_change_renews_the_statement_once() {
    let mut sim = Sim::new(config(2, PoolMode::Transaction));
    let (a, u1) = client_with_prepared_s1(&mut sim);
    let b = sim.ready_client();
    sim.client_send(b, &[parse_msg("s1", "SELECT 1"), FrontendMessage::Sync]);
    sim.upstream_send(u1, &[rfq(TransactionStatus::Idle)]);
    let unit = [bind_msg("s1"), execute_msg(), FrontendMessage::Sync];
    sim.client_send(a, &unit);
    let out = sim.client_send(b, &unit);
    let u2 = out.connects[0];
    sim.login_upstream(u2, 43);
    let changed = error("0A000", "cached plan must not change result type");
    sim.upstream_send(u1, &[changed, rfq(TransactionStatus::Idle)]);
    let reprepare = [
        close_statement("s1"),
        parse_msg("s1", "SELECT 1"),
        bind_msg("s1"),
        execute_msg(),
        FrontendMessage::Sync,
    ];
    let out = sim.client_send(a, &reprepare);
    assert_eq!(out.upstream_msgs(u1)[0], parse_msg("muxql_2", "SELECT 1"));
    let formats = error(
        "08P01",
        "bind message has 2 result formats but query has 3 columns",
    );
    sim.upstream_send(
        u2,
        &[
            BackendMessage::ParseComplete,
            formats,
            rfq(TransactionStatus::Idle),
        ],
    );
    sim.upstream_send(
        u1,
        &[
            BackendMessage::ParseComplete,
            BackendMessage::BindComplete,
            complete("SELECT 1"),
            rfq(TransactionStatus::Idle),
        ],
    );
    let out = sim.client_send(a, &unit);
    let to_a = [out.upstream_msgs(u1), out.upstream_msgs(u2)].concat();
    assert_eq!(to_a[0], bind_msg("muxql_2"), "a's statement is current");
}

/// The messages muxql sends in place of a client's Parse or Bind that the server must refuse:
/// the server raises `code` itself (so a transaction block aborts and the unit skips to Sync
/// as after any error). Returns the SQL of the raising statement.
fn raised_in_place(msgs: &[FrontendMessage], code: &str) -> String {
    match msgs {
        [FrontendMessage::Parse(p), FrontendMessage::Bind(b), FrontendMessage::Execute(_), ..]
            if p.name.is_empty() && b.statement.is_empty() =>
        {
            let sql = String::from_utf8_lossy(&p.query).into_owned();
            assert!(sql.starts_with("DO $muxql"), "{sql}");
            assert!(sql.contains(&format!("ERRCODE = '{code}'")), "{sql}");
            sql
        }
        other => panic!("{other:?}"),
    }
}

/// A Parse naming a statement the client already has fails with 42P05, as PostgreSQL's does;
/// the name keeps its statement.
#[test]
fn a_parse_reusing_a_statement_name_fails_with_42p05() {
    let mut sim = Sim::new(config(1, PoolMode::Transaction));
    let (a, u) = client_with_prepared_s1(&mut sim);
    let out = sim.client_send(a, &[parse_msg("s1", "SELECT 2"), FrontendMessage::Sync]);
    let sql = raised_in_place(&out.upstream_msgs(u), "42P05");
    assert!(
        sql.contains(r#"prepared statement "s1" already exists"#),
        "{sql}"
    );
    let exists = error("42P05", "prepared statement \"s1\" already exists");
    let out = sim.upstream_send(
        u,
        &[
            BackendMessage::ParseComplete,
            BackendMessage::BindComplete,
            exists.clone(),
            rfq(TransactionStatus::Idle),
        ],
    );
    assert_eq!(
        out.client_msgs(a),
        vec![exists, rfq(TransactionStatus::Idle)]
    );
    let out = sim.client_send(a, &[bind_msg("s1"), execute_msg(), FrontendMessage::Sync]);
    assert_eq!(
        out.upstream_msgs(u)[0],
        bind_msg("muxql_1"),
        "s1 is still SELECT 1"
    );
}

/// A statement name can say anything: the raising statement quotes it so that it stays text.
#[test]
fn a_hostile_statement_name_stays_inside_the_error_message() {
    let mut sim = Sim::new(config(1, PoolMode::Transaction));
    let a = sim.ready_client();
    let name = r"x$muxql$; DROP TABLE t; --\' $muxql_$";
    let unit = [parse_msg(name, "SELECT 1"), FrontendMessage::Sync];
    let out = sim.client_send(a, &unit);
    let (u, _) = out.to_upstreams[0];
    sim.upstream_send(
        u,
        &[BackendMessage::ParseComplete, rfq(TransactionStatus::Idle)],
    );
    let out = sim.client_send(a, &unit);
    let sql = raised_in_place(&out.upstream_msgs(u), "42P05");
    let tag = &sql[3..sql.find("BEGIN").expect("body")];
    assert_eq!(
        sql.matches(tag).count(),
        2,
        "the dollar quote opens and closes once: {sql}"
    );
    assert!(
        sql.contains(r"--\\'' $muxql_$"),
        "quote and backslash escaped: {sql}"
    );
}

/// Under `--pin-policy reject` a pinning statement fails when it is prepared, as the issue's
/// users expect from a statement the server would not accept; its name is not kept.
#[test]
fn reject_policy_refuses_a_pinning_statement_when_it_is_prepared() {
    let mut cfg = config(1, PoolMode::Transaction);
    cfg.pin_policy = PinPolicy::Reject;
    let mut sim = Sim::new(cfg);
    let a = sim.ready_client();
    for name in ["p", ""] {
        let out = sim.client_send(
            a,
            &[
                parse_msg(name, "SELECT pg_advisory_lock(1)"),
                FrontendMessage::Sync,
            ],
        );
        let (u, _) = out.to_upstreams[0];
        raised_in_place(&out.upstream_msgs(u), "0A000");
        let refused = error("0A000", "muxql: statement refused");
        let out = sim.upstream_send(
            u,
            &[
                BackendMessage::ParseComplete,
                BackendMessage::BindComplete,
                refused.clone(),
                rfq(TransactionStatus::Idle),
            ],
        );
        assert_eq!(
            out.client_msgs(a),
            vec![refused, rfq(TransactionStatus::Idle)]
        );
        assert_eq!(sim.engine.stats().routes[0].clients_pinned, 0);
    }
    let out = sim.client_send(a, &[bind_msg("p"), execute_msg(), FrontendMessage::Sync]);
    let (u, _) = out.to_upstreams[0];
    assert_eq!(
        out.upstream_msgs(u)[0],
        bind_msg("p"),
        "no statement p was kept"
    );
}

/// `DEALLOCATE name` of a statement prepared through the protocol drops only the client's
/// name: the server drops the shared statement on that upstream instead (the server then
/// answers as for the client's own), and the others prepare it again there when they need it.
#[test]
fn deallocate_name_drops_the_clients_name_and_answers_as_directly() {
    let mut sim = Sim::new(config(1, PoolMode::Transaction));
    let (a, u) = client_with_prepared_s1(&mut sim);
    let b = sim.ready_client();
    sim.client_send(b, &[parse_msg("t1", "SELECT 1"), FrontendMessage::Sync]);
    sim.upstream_send(u, &[rfq(TransactionStatus::Idle)]);
    let out = sim.client_send(a, &[q("DEALLOCATE s1")]);
    assert_eq!(out.upstream_msgs(u), vec![q("DEALLOCATE muxql_1")]);
    let answer = [complete("DEALLOCATE"), rfq(TransactionStatus::Idle)];
    let out = sim.upstream_send(u, &answer);
    assert_eq!(out.client_msgs(a), answer.to_vec());
    let out = sim.client_send(b, &[bind_msg("t1"), execute_msg(), FrontendMessage::Sync]);
    assert_eq!(
        out.upstream_msgs(u)[..2],
        [parse_msg("muxql_1", "SELECT 1"), bind_msg("muxql_1")],
        "prepared again for b"
    );
    sim.upstream_send(
        u,
        &[
            BackendMessage::ParseComplete,
            BackendMessage::BindComplete,
            complete("SELECT 1"),
            rfq(TransactionStatus::Idle),
        ],
    );
    let out = sim.client_send(a, &[bind_msg("s1"), execute_msg(), FrontendMessage::Sync]);
    assert_eq!(out.upstream_msgs(u)[0], bind_msg("s1"), "a's name is gone");
}

/// On an upstream that never prepared the client's statement, it is prepared there first, so
/// that the server's DEALLOCATE succeeds as the client's would.
#[test]
fn deallocate_name_on_another_upstream_prepares_it_there_first() {
    let mut sim = Sim::new(config(2, PoolMode::Transaction));
    let (a, u1) = client_with_prepared_s1(&mut sim);
    let b = sim.ready_client();
    sim.client_send(b, &[q("BEGIN")]);
    sim.upstream_send(
        u1,
        &[complete("BEGIN"), rfq(TransactionStatus::InTransaction)],
    );
    let out = sim.client_send(
        a,
        &[
            parse_msg("", "deallocate prepare s1"),
            bind_msg(""),
            execute_msg(),
            FrontendMessage::Sync,
        ],
    );
    let u2 = out.connects[0];
    let out = sim.login_upstream(u2, 43);
    assert_eq!(
        out.upstream_msgs(u2),
        vec![
            parse_msg("muxql_1", "SELECT 1"),
            FrontendMessage::Sync,
            parse_msg("", "DEALLOCATE muxql_1"),
            bind_msg(""),
            execute_msg(),
            FrontendMessage::Sync,
        ]
    );
    let out = sim.upstream_send(
        u2,
        &[
            BackendMessage::ParseComplete,
            rfq(TransactionStatus::Idle),
            BackendMessage::ParseComplete,
            BackendMessage::BindComplete,
            complete("DEALLOCATE"),
            rfq(TransactionStatus::Idle),
        ],
    );
    assert_eq!(
        out.client_msgs(a),
        vec![
            BackendMessage::ParseComplete,
            BackendMessage::BindComplete,
            complete("DEALLOCATE"),
            rfq(TransactionStatus::Idle),
        ]
    );
}
