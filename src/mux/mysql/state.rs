//! MySQL session state that follows a client across upstreams: system variables and the
//! current schema as the server's session trackers report them, and the multi-statement
//! option. Each client and each upstream keeps its differences from a fresh connection; when
//! a client lands on an upstream, the statements that make the upstream's session equal the
//! client's are replayed first.

use std::collections::BTreeMap;

use bytes::Bytes;

/// The collation every upstream logs in with: utf8mb4_general_ci.
pub(crate) const UPSTREAM_COLLATION: u8 = 45;

/// The session variables a handshake collation sets, in the order `SET NAMES` sets them.
const CHARSET_VARS: [&str; 4] = [
    "character_set_client",
    "character_set_connection",
    "character_set_results",
    "collation_connection",
];

/// Character set and collation names of the handshake collation ids clients commonly send
/// (MySQL Reference Manual, "Character Sets and Collations"; ids are shared by MariaDB).
/// Unknown ids fall back to the upstream's, as a server falls back to its default.
fn collation(id: u8) -> Option<(&'static str, &'static str)> {
    Some(match id {
        8 => ("latin1", "latin1_swedish_ci"),
        33 => ("utf8mb3", "utf8mb3_general_ci"),
        45 => ("utf8mb4", "utf8mb4_general_ci"),
        46 => ("utf8mb4", "utf8mb4_bin"),
        47 => ("latin1", "latin1_bin"),
        48 => ("latin1", "latin1_general_ci"),
        63 => ("binary", "binary"),
        83 => ("utf8mb3", "utf8mb3_bin"),
        192 => ("utf8mb3", "utf8mb3_unicode_ci"),
        224 => ("utf8mb4", "utf8mb4_unicode_ci"),
        _ => return None,
    })
}

/// Session state as differences from a fresh upstream connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct MyState {
    /// System variables reported changed: lower-case name → value.
    pub(crate) vars: BTreeMap<Box<str>, Bytes>,
    /// Current schema, when it is not the route's database.
    pub(crate) schema: Option<Bytes>,
    /// Multi-statement queries are refused (client without `CLIENT_MULTI_STATEMENTS`, or
    /// COM_SET_OPTION off); upstreams log in with them allowed.
    pub(crate) single_statements: bool,
}

impl MyState {
    /// The state of a client that logged in with handshake collation `collation_id`.
    pub(crate) fn for_login(collation_id: u8, multi_statements: bool) -> Self {
        let mut state = MyState {
            single_statements: !multi_statements,
            ..MyState::default()
        };
        if let Some((charset, coll)) =
            collation(collation_id).filter(|_| collation_id != UPSTREAM_COLLATION)
        {
            for (name, value) in CHARSET_VARS.iter().zip([charset, charset, charset, coll]) {
                state
                    .vars
                    .insert((*name).into(), Bytes::from_static(value.as_bytes()));
            }
        }
        state
    }

    /// Records a variable the server reported changed.
    pub(crate) fn set_var(&mut self, name: &[u8], value: Bytes) {
        let name = String::from_utf8_lossy(name).to_ascii_lowercase();
        self.vars.insert(name.into_boxed_str(), value);
    }

    /// The SQL that turns a session in state `current` into `self`'s (variables only; the
    /// schema and the statement option travel as their own commands). Empty when equal.
    pub(crate) fn set_sql(&self, current: &MyState) -> String {
        let mut sql = String::new();
        let mut push = |name: &str, value: Option<&[u8]>| {
            sql.push_str(if sql.is_empty() { "SET " } else { ", " });
            sql.push_str("@@SESSION.");
            sql.push_str(name);
            sql.push_str(" = ");
            match value {
                Some(v) => push_value(&mut sql, v),
                None => sql.push_str(&reset_value(name)),
            }
        };
        for (name, value) in &self.vars {
            if current.vars.get(name) != Some(value) {
                push(name, Some(value));
            }
        }
        for name in current.vars.keys() {
            if !self.vars.contains_key(name) {
                push(name, None);
            }
        }
        sql
    }
}

/// What a variable the client never changed goes back to: the upstream's login collation for
/// the character set variables, the server default for the rest.
fn reset_value(name: &str) -> String {
    let Some((charset, coll)) = collation(UPSTREAM_COLLATION) else {
        return "DEFAULT".into();
    };
    match name {
        "collation_connection" => format!("'{coll}'"),
        n if CHARSET_VARS.contains(&n) => format!("'{charset}'"),
        _ => "DEFAULT".into(),
    }
}

/// Appends `value` as the server reported it: numbers and ON/OFF bare, the rest quoted.
fn push_value(sql: &mut String, value: &[u8]) {
    let text = String::from_utf8_lossy(value);
    let bare = !text.is_empty()
        && (text
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-')
            && text.bytes().any(|b| b.is_ascii_digit())
            || text.eq_ignore_ascii_case("ON")
            || text.eq_ignore_ascii_case("OFF"));
    if bare {
        sql.push_str(&text);
        return;
    }
    sql.push('\'');
    for c in text.chars() {
        match c {
            '\'' => sql.push_str("''"),
            '\\' => sql.push_str("\\\\"),
            c => sql.push(c),
        }
    }
    sql.push('\'');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_login_collation_other_than_the_upstreams_is_state() {
        assert!(MyState::for_login(45, true).vars.is_empty());
        assert!(MyState::for_login(250, true).vars.is_empty(), "unknown id");
        let latin = MyState::for_login(8, false);
        assert_eq!(latin.vars.len(), 4);
        assert!(latin.single_statements);
        assert_eq!(
            latin.set_sql(&MyState::default()),
            "SET @@SESSION.character_set_client = 'latin1', \
             @@SESSION.character_set_connection = 'latin1', \
             @@SESSION.character_set_results = 'latin1', \
             @@SESSION.collation_connection = 'latin1_swedish_ci'"
        );
    }

    #[test]
    fn replay_sets_what_differs_and_resets_what_the_client_lacks() {
        let mut client = MyState::default();
        client.set_var(b"Time_Zone", Bytes::from_static(b"+02:00"));
        client.set_var(b"autocommit", Bytes::from_static(b"OFF"));
        client.set_var(b"wait_timeout", Bytes::from_static(b"100"));
        let mut upstream = MyState::default();
        upstream.set_var(b"autocommit", Bytes::from_static(b"OFF"));
        upstream.set_var(b"sql_mode", Bytes::from_static(b"ANSI"));
        upstream.set_var(b"character_set_results", Bytes::from_static(b"latin1"));
        assert_eq!(
            client.set_sql(&upstream),
            "SET @@SESSION.time_zone = '+02:00', @@SESSION.wait_timeout = 100, \
             @@SESSION.character_set_results = 'utf8mb4', @@SESSION.sql_mode = DEFAULT"
        );
        assert_eq!(client.set_sql(&client.clone()), "");
    }

    #[test]
    fn quotes_are_escaped() {
        let mut s = String::new();
        push_value(&mut s, b"it's \\ here");
        assert_eq!(s, "'it''s \\\\ here'");
    }
}
