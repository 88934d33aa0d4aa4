//! Binary-protocol prepared statements across pooled upstreams.
//!
//! A client sees statement ids muxql mints for it; each id names a pool-wide entry per SQL
//! text. Each upstream maps entries to the ids its server gave them, prepares them lazily on
//! first use there, and closes the least recently used ones beyond the cache size.

use std::cell::Cell;
use std::collections::HashMap;
use std::rc::Rc;

use bytes::Bytes;

/// A statement text shared by every client of a pool that prepared it.
#[derive(Debug)]
pub(crate) struct MyStmt {
    /// Pool-unique id, never reused.
    pub(crate) id: u64,
    /// The SQL text.
    pub(crate) sql: Bytes,
    /// Parameter count from the server's PREPARE_OK.
    pub(crate) params: Cell<u16>,
    /// One statement that runs in its own implicit transaction and leaves no session state
    /// (it may be pipelined behind another client's).
    pub(crate) autocommit: bool,
    /// Client statement ids that refer to this entry.
    names: Cell<usize>,
}

/// Pool-wide registry of statement texts.
#[derive(Debug, Default)]
pub(crate) struct MyRegistry {
    entries: HashMap<Bytes, Rc<MyStmt>>,
    next_id: u64,
}

impl MyRegistry {
    /// The entry for `sql`, created when new, for one more client statement id (give it back
    /// with [`MyRegistry::release`]).
    pub(crate) fn intern(&mut self, sql: Bytes) -> Rc<MyStmt> {
        if let Some(s) = self.entries.get(&sql) {
            s.names.set(s.names.get() + 1);
            return Rc::clone(s);
        }
        self.next_id += 1;
        let stmt = Rc::new(MyStmt {
            id: self.next_id,
            sql: sql.clone(),
            params: Cell::new(0),
            autocommit: crate::mysql::sql::is_autocommit_statement(&sql),
            names: Cell::new(1),
        });
        self.entries.insert(sql, Rc::clone(&stmt));
        stmt
    }

    /// A client statement id no longer refers to `stmt`.
    pub(crate) fn release(&mut self, stmt: &MyStmt) {
        let names = stmt.names.get().saturating_sub(1);
        stmt.names.set(names);
        if names == 0 {
            self.entries.remove(&stmt.sql);
        }
    }

    /// Number of live entries.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

/// A statement as one client knows it.
#[derive(Debug)]
pub(crate) struct ClientStmt {
    pub(crate) entry: Rc<MyStmt>,
    /// The parameter types the client sent last (COM_STMT_EXECUTE with new_params_bind_flag),
    /// for upstreams that have not seen them.
    pub(crate) types: Option<Bytes>,
}

/// One upstream's prepared statement.
#[derive(Debug, Clone)]
pub(crate) struct ServerStmt {
    /// The id the server gave it.
    pub(crate) server_id: u32,
    /// The parameter types the server holds for it (the last COM_STMT_EXECUTE that sent
    /// types, from whichever client).
    pub(crate) types: Option<Bytes>,
    last_use: u64,
}

/// The statements one upstream has prepared, least recently used first out.
#[derive(Debug, Default)]
pub(crate) struct Prepared {
    by_entry: HashMap<u64, ServerStmt>,
    tick: u64,
}

impl Prepared {
    /// The server statement of entry `id`, marked used.
    pub(crate) fn touch(&mut self, id: u64) -> Option<&mut ServerStmt> {
        self.tick += 1;
        let tick = self.tick;
        let s = self.by_entry.get_mut(&id)?;
        s.last_use = tick;
        Some(s)
    }

    /// Whether entry `id` is prepared here (without marking it used).
    pub(crate) fn contains(&self, id: u64) -> bool {
        self.by_entry.contains_key(&id)
    }

    /// Records entry `id` as server statement `server_id`; returns the server id it replaces.
    pub(crate) fn insert(&mut self, id: u64, server_id: u32) -> Option<u32> {
        self.tick += 1;
        let old = self.by_entry.insert(
            id,
            ServerStmt {
                server_id,
                types: None,
                last_use: self.tick,
            },
        );
        old.map(|s| s.server_id).filter(|&o| o != server_id)
    }

    /// Forgets and returns the server id of the least recently used statement when more than
    /// `cap` are prepared.
    pub(crate) fn evict_over(&mut self, cap: usize) -> Option<u32> {
        if self.by_entry.len() <= cap {
            return None;
        }
        let (&id, _) = self.by_entry.iter().min_by_key(|(_, s)| s.last_use)?;
        self.by_entry.remove(&id).map(|s| s.server_id)
    }

    /// Forgets everything (the session was reset).
    pub(crate) fn clear(&mut self) {
        self.by_entry = HashMap::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_text_shares_an_entry_until_its_last_name_goes() {
        let mut reg = MyRegistry::default();
        let a = reg.intern(Bytes::from_static(b"SELECT ?"));
        let b = reg.intern(Bytes::from_static(b"SELECT ?"));
        let c = reg.intern(Bytes::from_static(b"SELECT 1"));
        assert_eq!(a.id, b.id);
        assert_ne!(a.id, c.id);
        reg.release(&a);
        assert_eq!(reg.len(), 2);
        reg.release(&b);
        assert_eq!(reg.len(), 1);
        let again = reg.intern(Bytes::from_static(b"SELECT ?"));
        assert_ne!(again.id, a.id, "ids are never reused");
    }

    #[test]
    fn the_least_recently_used_statement_goes_first() {
        let mut p = Prepared::default();
        p.insert(1, 10);
        p.insert(2, 20);
        p.touch(1);
        p.insert(3, 30);
        assert_eq!(p.evict_over(2), Some(20));
        assert_eq!(p.evict_over(2), None);
        assert_eq!(
            p.insert(1, 11),
            Some(10),
            "a re-prepare replaces the old id"
        );
    }
}
