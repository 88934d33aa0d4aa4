//! The MySQL side of pooling: what a pool keeps for its MySQL clients, replaying a client's
//! session state on the upstream it lands on, and cleaning up after a client.

use std::rc::Rc;

use bytes::{BufMut, Bytes, BytesMut};

use super::client::{packet, MyClient};
use super::statements::{MyRegistry, MyStmt};
use super::upstream::{Owed, RESET_SQL};
use crate::mux::engine::Engine;
use crate::mux::ids::{ClientId, UpstreamId};
use crate::mux::Action;
use crate::mysql::command::code::{COM_INIT_DB, COM_QUERY, COM_RESET_CONNECTION, COM_SET_OPTION};
use crate::mysql::StatusFlags;

/// What the first upstream of a pool told about its server.
#[derive(Debug)]
pub(crate) struct MyBaseline {
    /// The version string clients are greeted with.
    pub(crate) server_version: Bytes,
}

/// What a MySQL pool keeps beside the protocol-neutral pool.
#[derive(Debug, Default)]
pub(crate) struct MyPool {
    /// Set once the first upstream logged in.
    pub(crate) baseline: Option<MyBaseline>,
    /// Prepared statement texts of this pool's clients.
    pub(crate) statements: MyRegistry,
}

/// COM_SET_OPTION arguments.
const MYSQL_OPTION_MULTI_STATEMENTS_ON: u16 = 0;
const MYSQL_OPTION_MULTI_STATEMENTS_OFF: u16 = 1;

impl Engine {
    /// Sends a command of muxql's own to upstream `uid`; its answer is swallowed.
    pub(crate) fn my_send_own(
        &mut self,
        uid: UpstreamId,
        payload: &[u8],
        prepare: Option<Rc<MyStmt>>,
    ) {
        let limits = self.limits;
        let Some(u) = self.upstreams.my_mut(uid) else {
            return;
        };
        let Some(&code) = payload.first() else {
            return;
        };
        if let Some(reader) = u.reader(code, limits) {
            if !reader.is_complete() {
                u.owed.push_back(Owed::Own { reader, prepare });
            }
        }
        u.last_prepare = None;
        self.actions.push_back(Action::SendUpstream {
            id: uid,
            bytes: packet(payload, 0),
        });
    }

    /// Brings an upstream just attached to a client in line with the client's session state:
    /// variables, schema, the multi-statement option and, when its next statement reads it,
    /// LAST_INSERT_ID().
    pub(crate) fn my_replay_state(&mut self, uid: UpstreamId, cid: ClientId) {
        let (Some(c), Some(u)) = (self.clients.my(cid), self.upstreams.my_mut(uid)) else {
            return;
        };
        // Whether others may queue behind it is decided by this client's first command.
        u.pipeline_ok = false;
        let sql = c.state.set_sql(&u.state);
        let schema = (c.state.schema != u.state.schema).then(|| {
            c.state.schema.clone().unwrap_or_else(|| {
                Bytes::from(self.config.routes[u.core.route].upstream_database.clone())
            })
        });
        let option = (c.state.single_statements != u.state.single_statements).then_some(
            if c.state.single_statements {
                MYSQL_OPTION_MULTI_STATEMENTS_OFF
            } else {
                MYSQL_OPTION_MULTI_STATEMENTS_ON
            },
        );
        u.state = c.state.clone();
        let mut commands: Vec<Vec<u8>> = Vec::new();
        if !sql.is_empty() {
            let mut p = vec![COM_QUERY];
            p.extend_from_slice(sql.as_bytes());
            commands.push(p);
        }
        if let Some(schema) = schema {
            let mut p = vec![COM_INIT_DB];
            p.extend_from_slice(&schema);
            commands.push(p);
        }
        if let Some(option) = option {
            let mut p = BytesMut::new();
            p.put_u8(COM_SET_OPTION);
            p.put_u16_le(option);
            commands.push(p.to_vec());
        }
        for p in commands {
            self.my_send_own(uid, &p, None);
        }
    }

    /// Puts the client's LAST_INSERT_ID() on its upstream before a statement that reads it.
    pub(crate) fn my_replay_insert_id(&mut self, uid: UpstreamId, cid: ClientId) {
        let (Some(c), Some(u)) = (self.clients.my(cid), self.upstreams.my_mut(uid)) else {
            return;
        };
        if u.last_insert_id == c.last_insert_id {
            return;
        }
        u.last_insert_id = c.last_insert_id;
        let sql = format!("SELECT LAST_INSERT_ID({})", c.last_insert_id);
        let mut p = vec![COM_QUERY];
        p.extend_from_slice(sql.as_bytes());
        self.my_send_own(uid, &p, None);
    }

    /// Forgets what a departed client left in the MySQL state: its connection id and its
    /// statements.
    pub(crate) fn my_client_gone(&mut self, c: MyClient) {
        if c.conn_id != 0 {
            self.my.conn_index.remove(&c.conn_id);
        }
        if c.queued_on.is_some() {
            // Its command is on the wire already: the answer is dropped when its turn comes.
            self.pools[c.core.route].deactivate();
        }
        if c.is_logging_in() {
            return;
        }
        let pool = &mut self.pools[c.core.route];
        for (_, stmt) in c.stmts {
            pool.ext.my().statements.release(&stmt.entry);
        }
    }

    /// Makes an upstream whose client left fit for the next one: a request still running
    /// retires it; an open transaction is rolled back; session state the client left behind
    /// (`discard`) is reset with COM_RESET_CONNECTION and the trackers turned on again.
    pub(crate) fn my_clean_after_client(&mut self, uid: UpstreamId, discard: bool) {
        let Some(u) = self.upstreams.my_mut(uid) else {
            return;
        };
        if !u.followers.is_empty() {
            // Others' commands run behind the departed client's: its answers are dropped and
            // the next follower is served after it.
            return;
        }
        let busy = u.owed.iter().any(|o| !matches!(o, Owed::Local(..)));
        if busy {
            self.pools[u.core.route].stats.upstreams_discarded += 1;
            return self.retire(uid);
        }
        u.owed.clear();
        let in_transaction = u.status.contains(StatusFlags::SERVER_STATUS_IN_TRANS) || u.tx_pending;
        if discard || u.tx_pending {
            u.state = Default::default();
            u.prepared.clear();
            u.last_insert_id = 0;
            u.tx_pending = false;
            u.status = StatusFlags::SERVER_STATUS_AUTOCOMMIT;
            self.my_send_own(uid, &[COM_RESET_CONNECTION], None);
            let mut p = vec![COM_QUERY];
            p.extend_from_slice(RESET_SQL.as_bytes());
            return self.my_send_own(uid, &p, None);
        }
        if in_transaction {
            u.status.remove(StatusFlags::SERVER_STATUS_IN_TRANS);
            let mut p = vec![COM_QUERY];
            p.extend_from_slice(b"ROLLBACK");
            return self.my_send_own(uid, &p, None);
        }
        self.park(uid);
    }
}
