//! The Engine targets' harness reaches what it claims: logins through each authentication
//! method, answers from the scripted servers carrying the client's tag, refusals of wrong
//! passwords; and its checks fire when an invariant breaks.

use muxql::mux::Protocol;
use muxql_fuzz::host::{run, Input, Op, Report};
use muxql_fuzz::tags::{find_tags, tag};

/// Two clients log in (with the right password or not), the upstream connects, and each sends
/// `requests`, with the server answering after every step.
fn scenario(auth: u8, right: bool, requests: &[u8]) -> Input {
    let answer = || Op::Answer {
        upstream: 0,
        max: 2047,
    };
    // A MySQL client is greeted once an upstream has logged in; a PostgreSQL login asks for one.
    let mut ops = vec![Op::Open, Op::Open];
    ops.extend([Op::Connected { upstream: 0 }, answer(), answer(), answer()]);
    for client in 0..2 {
        ops.push(Op::Login {
            client,
            right_password: right,
            session: false,
        });
        ops.extend([Op::Connected { upstream: 0 }, answer(), answer(), answer()]);
    }
    for &request in requests {
        for client in 0..2 {
            ops.push(Op::Request {
                client,
                request,
                cut: client * 3,
            });
            ops.extend([answer(), answer(), answer()]);
        }
    }
    Input {
        auth,
        pool_size: 0,
        pipeline_depth: 0,
        ops,
    }
}

#[test]
fn tags_are_per_client_and_found_inside_bytes() {
    assert_eq!(tag(7), "tag000007z");
    let got: Vec<u32> = find_tags(b"xxtag000007z..tag123456z tag12345z").collect();
    assert_eq!(got, vec![7, 123_456]);
}

#[test]
fn postgres_logins_reach_the_scripted_server_with_every_method() {
    // SCRAM, MD5, cleartext, trust; a query, an unnamed and a named statement's executions,
    // and two queries in one (the model answers them as one): one tag each but Parse's.
    for auth in 0..4 {
        let report = run(Protocol::Postgres, scenario(auth, true, &[0, 6, 7, 8, 16]));
        assert_eq!(report.logins, 2, "auth {auth}: {report:?}");
        assert_eq!(report.tags, 2 * 4, "auth {auth}: {report:?}");
    }
}

#[test]
fn postgres_wrong_passwords_are_refused() {
    for auth in 0..3 {
        let report = run(Protocol::Postgres, scenario(auth, false, &[0]));
        assert_eq!(
            report,
            Report {
                logins: 0,
                refusals: 2,
                tags: 0
            },
            "auth {auth}"
        );
    }
}

#[test]
fn mysql_logins_reach_the_scripted_server() {
    // Native password; a query, a prepared statement and its execution, two queries in one
    // (the model answers them as one): one tag each but the preparation's.
    let report = run(Protocol::Mysql, scenario(0, true, &[0, 6, 7, 22]));
    assert_eq!(report.logins, 2, "{report:?}");
    assert_eq!(report.tags, 2 * 3, "{report:?}");
}

#[test]
fn mysql_wrong_passwords_are_refused() {
    for auth in 0..2 {
        let report = run(Protocol::Mysql, scenario(auth, false, &[0]));
        assert_eq!(report.logins, 0, "auth {auth}: {report:?}");
        assert_eq!(report.refusals, 2, "auth {auth}: {report:?}");
    }
}
