//! Named prepared statements across pooled upstreams.
//!
//! A client's statement name maps to a pool-wide entry keyed by (query, parameter types). Each
//! entry has a server-side name `muxql_<n>` that is never reused, so a stale statement left on
//! an upstream can never be mistaken for another. Each upstream remembers which entries it has
//! prepared, least recently used first out.

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use bytes::Bytes;

/// A statement shared by every client of a pool that prepared the same text.
#[derive(Debug)]
pub(crate) struct Statement {
    /// The SQL text.
    pub(crate) query: Bytes,
    /// Parameter type OIDs from the client's Parse.
    pub(crate) param_types: Box<[u32]>,
    /// Whether running it changes session settings (SET, RESET, DISCARD ALL...).
    pub(crate) changes_settings: bool,
    /// Whether it is one statement that runs in its own implicit transaction and leaves no
    /// session state (see [`crate::pg::sql::is_autocommit_statement`]).
    pub(crate) autocommit: bool,
    /// Current server-side id; replaced when the statement must be prepared afresh.
    server_id: Cell<u64>,
    /// Client statement names bound to this entry. Requests in flight hold the entry too,
    /// but only client names keep it in the registry.
    names: Cell<usize>,
}

impl Statement {
    /// The current server-side id.
    pub(crate) fn server_id(&self) -> u64 {
        self.server_id.get()
    }
}

/// A client's name for a pooled statement, with what the client knows of it.
#[derive(Debug, Clone)]
pub(crate) struct Named {
    /// The pooled statement.
    pub(crate) stmt: Rc<Statement>,
    /// The statement's server id when the client prepared it. Once the statement is prepared
    /// afresh because its result type changed, the client's idea of its columns is stale, as
    /// its own server-side statement would be on a direct connection.
    server_id: u64,
}

impl Named {
    /// A name for `stmt` as it is now.
    pub(crate) fn new(stmt: Rc<Statement>) -> Self {
        let server_id = stmt.server_id();
        Named { stmt, server_id }
    }

    /// Whether the statement's result type changed since the client prepared it.
    pub(crate) fn is_stale(&self) -> bool {
        self.server_id != self.stmt.server_id()
    }
}

/// A client's statement names.
pub(crate) type Names = HashMap<Bytes, Named>;

/// The server-side name of statement id `id`.
pub(crate) fn server_name(id: u64) -> Vec<u8> {
    format!("muxql_{id}").into_bytes()
}

/// Pool-wide registry of statements.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    entries: HashMap<(Bytes, Box<[u32]>), Rc<Statement>>,
    next_id: u64,
}

impl Registry {
    /// The entry for `query` with `param_types`, created when new, for one more client
    /// statement name (give it back with [`Registry::release`]).
    pub(crate) fn intern(&mut self, query: Bytes, param_types: Vec<u32>) -> Rc<Statement> {
        let key = (query, param_types.into_boxed_slice());
        if let Some(s) = self.entries.get(&key) {
            s.names.set(s.names.get() + 1);
            return Rc::clone(s);
        }
        self.next_id += 1;
        let mut changes_settings = false;
        crate::pg::sql::for_each_effect(&key.0, |e| {
            changes_settings |= !matches!(e, crate::pg::sql::Effect::Pin(_));
        });
        let stmt = Rc::new(Statement {
            query: key.0.clone(),
            param_types: key.1.clone(),
            changes_settings,
            autocommit: crate::pg::sql::is_autocommit_statement(&key.0),
            server_id: Cell::new(self.next_id),
            names: Cell::new(1),
        });
        self.entries.insert(key, Rc::clone(&stmt));
        stmt
    }

    /// Gives `stmt` a fresh server-side id, so every upstream prepares it again
    /// (after "cached plan must not change result type").
    pub(crate) fn renew(&mut self, stmt: &Statement) {
        self.next_id += 1;
        stmt.server_id.set(self.next_id);
    }

    /// A client statement name no longer refers to `stmt`: the entry leaves the registry with
    /// the last name, even while a request in flight still holds it.
    pub(crate) fn release(&mut self, stmt: &Statement) {
        let names = stmt.names.get().saturating_sub(1);
        stmt.names.set(names);
        if names == 0 {
            self.entries
                .remove(&(stmt.query.clone(), stmt.param_types.clone()));
        }
    }

    /// Number of live entries.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

/// The statements one upstream has prepared, with least-recently-used eviction.
#[derive(Debug, Default)]
pub(crate) struct Prepared {
    last_use: HashMap<u64, u64>,
    tick: u64,
    /// Statements a client's DEALLOCATE ALL or DISCARD ALL may or may not have dropped (it
    /// may have failed): closed before they are prepared again, which is harmless either way.
    uncertain: HashSet<u64>,
}

impl Prepared {
    /// Whether server id `id` is prepared; marks it used.
    pub(crate) fn touch(&mut self, id: u64) -> bool {
        self.tick += 1;
        match self.last_use.get_mut(&id) {
            Some(t) => {
                *t = self.tick;
                true
            }
            None => false,
        }
    }

    /// Records `id` as prepared; returns whether the server may still hold an older copy
    /// that must be closed first.
    #[must_use]
    pub(crate) fn insert(&mut self, id: u64) -> bool {
        self.tick += 1;
        self.last_use.insert(id, self.tick);
        self.uncertain.remove(&id)
    }

    /// Forgets and returns the least recently used id, which the caller must close on the
    /// server.
    pub(crate) fn evict_oldest(&mut self) -> Option<u64> {
        let oldest = self
            .last_use
            .iter()
            .min_by_key(|(_, t)| **t)
            .map(|(id, _)| *id)?;
        self.last_use.remove(&oldest);
        Some(oldest)
    }

    /// Number of statements prepared.
    pub(crate) fn len(&self) -> usize {
        self.last_use.len()
    }

    /// Forgets `id` (its Parse failed or was never run).
    pub(crate) fn remove(&mut self, id: u64) {
        self.last_use.remove(&id);
    }

    /// Forgets everything (muxql itself ran DISCARD ALL).
    pub(crate) fn clear(&mut self) {
        self.last_use = HashMap::new();
        self.uncertain = HashSet::new();
    }

    /// Forgets everything a client's DEALLOCATE ALL or DISCARD ALL drops if it succeeds.
    pub(crate) fn forget_all(&mut self) {
        self.uncertain
            .extend(self.last_use.drain().map(|(id, _)| id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_text_shares_an_entry_and_ids_are_never_reused() {
        let mut reg = Registry::default();
        let a = reg.intern(Bytes::from_static(b"select 1"), vec![]);
        let b = reg.intern(Bytes::from_static(b"select 1"), vec![]);
        let c = reg.intern(Bytes::from_static(b"select 1"), vec![23]);
        assert_eq!(a.server_id(), b.server_id());
        assert_ne!(a.server_id(), c.server_id());
        let old = a.server_id();
        reg.renew(&a);
        assert_ne!(a.server_id(), old);
        assert_eq!(a.server_id(), b.server_id());
        reg.release(&b);
        assert_eq!(reg.len(), 2);
        reg.release(&a);
        assert_eq!(reg.len(), 1);
    }

    #[test]
    fn lru_evicts_the_least_recently_used() {
        let mut p = Prepared::default();
        assert!(!p.insert(1));
        assert!(!p.insert(2));
        assert!(p.touch(1));
        assert_eq!(p.evict_oldest(), Some(2));
        assert!(!p.insert(3));
        assert_eq!(p.len(), 2);
        assert!(!p.touch(2));
        assert!(p.touch(3));
    }

    #[test]
    fn statements_a_client_may_have_dropped_are_closed_before_they_are_prepared_again() {
        let mut p = Prepared::default();
        assert!(!p.insert(1));
        p.forget_all();
        assert!(!p.touch(1));
        assert!(p.insert(1), "close it first: it may still exist");
        p.remove(1);
        assert!(!p.insert(1), "only once");
        p.forget_all();
        p.clear();
        assert!(!p.insert(1), "muxql's own DISCARD ALL is certain");
    }
}
