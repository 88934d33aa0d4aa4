//! Remembered classifications of SQL texts clients send again and again.
//!
//! Applications send the same few statement texts over and over (an ORM's queries, an unnamed
//! Parse per request); looking a text up costs a hash, classifying it costs a full lex. Only
//! short texts are remembered, and the table is emptied when full, so it stays small.

use std::collections::HashMap;

use bytes::Bytes;

use crate::pg::sql::{for_each_effect, is_autocommit_statement};

/// Most texts remembered before the table is emptied.
const MAX_ENTRIES: usize = 512;
/// Longest text remembered, in bytes.
const MAX_SQL_LEN: usize = 2048;

/// What the relay needs to know about one SQL text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SqlVerdict {
    /// [`for_each_effect`] reports something: the text must be lexed for its effects.
    pub(crate) effects: bool,
    /// [`is_autocommit_statement`] holds.
    pub(crate) autocommit: bool,
}

impl SqlVerdict {
    fn of(sql: &[u8]) -> SqlVerdict {
        let mut effects = false;
        for_each_effect(sql, |_| effects = true);
        SqlVerdict {
            effects,
            autocommit: !effects && is_autocommit_statement(sql),
        }
    }
}

/// A bounded table of SQL text → verdict.
#[derive(Debug, Default)]
pub(crate) struct SqlVerdicts {
    map: HashMap<Bytes, SqlVerdict>,
}

impl SqlVerdicts {
    /// The verdict on `sql`, computed and remembered when new.
    pub(crate) fn get(&mut self, sql: &[u8]) -> SqlVerdict {
        if let Some(v) = self.map.get(sql) {
            return *v;
        }
        let verdict = SqlVerdict::of(sql);
        if sql.len() <= MAX_SQL_LEN {
            if self.map.len() >= MAX_ENTRIES {
                self.map.clear();
            }
            self.map.insert(Bytes::copy_from_slice(sql), verdict);
        }
        verdict
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_match_the_classifier_and_stay_bounded() {
        let mut v = SqlVerdicts::default();
        let plain = v.get(b"SELECT 1");
        assert_eq!(
            plain,
            SqlVerdict {
                effects: false,
                autocommit: true
            }
        );
        assert_eq!(v.get(b"SELECT 1"), plain);
        assert_eq!(
            v.get(b"SET x = 1"),
            SqlVerdict {
                effects: true,
                autocommit: false
            }
        );
        assert_eq!(
            v.get(b"BEGIN"),
            SqlVerdict {
                effects: false,
                autocommit: false
            }
        );
        for i in 0..3 * MAX_ENTRIES {
            v.get(format!("SELECT {i}").as_bytes());
            assert!(v.map.len() <= MAX_ENTRIES);
        }
        let long = format!("SELECT '{}'", "x".repeat(MAX_SQL_LEN));
        let before = v.map.len();
        assert!(v.get(long.as_bytes()).autocommit);
        assert_eq!(v.map.len(), before, "long texts are not remembered");
    }
}
