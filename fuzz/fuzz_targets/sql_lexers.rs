//! The PostgreSQL and MySQL SQL lexers muxql runs on every query: no panic on any text, and the
//! MySQL rewrite of per-connection values only ever replaces what it recognised.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|sql: &[u8]| {
    let _ = muxql::pg::sql::effects(sql);
    let _ = muxql::pg::sql::is_autocommit_statement(sql);
    muxql::mysql::sql::for_each_effect(sql, |_| {});
    let _ = muxql::mysql::sql::is_autocommit_statement(sql);
    let _ = muxql::mysql::sql::show_diagnostics(sql);
    if let Some(out) = muxql::mysql::sql::replace_previous_values(sql, -1, 3, 1) {
        assert_ne!(out, sql, "a rewrite changes the text");
        // Replacing again finds nothing left to replace.
        assert_eq!(
            muxql::mysql::sql::replace_previous_values(&out, -1, 3, 1),
            None
        );
    }
});
