//! A small MySQL/MariaDB SQL lexer that finds what a multiplexer must know about a query: the
//! session state it creates that the server's session trackers do not report (user variables,
//! temporary tables, named locks...), and the per-connection values it reads (LAST_INSERT_ID,
//! ROW_COUNT, warnings).
//!
//! It follows the server's lexical rules (MySQL Reference Manual, "Comments", "String
//! Literals", "User-Defined Variables"): `--` comments need a following space, `#` comments run
//! to the end of the line, `/*! ... */` and MariaDB's `/*M! ... */` comments are executed, so
//! their contents are lexed as code. Backslash escapes apply inside quoted strings.

/// Session state a statement creates that only exists on the connection it ran on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinReason {
    /// `SET @v = ...`, `@v := ...`, `... INTO @v`.
    UserVariable,
    /// `CREATE TEMPORARY TABLE`.
    TemporaryTable,
    /// `GET_LOCK()`.
    NamedLock,
    /// `LOCK TABLES`, `FLUSH TABLES ... WITH READ LOCK` (until `UNLOCK TABLES`).
    LockTables,
    /// Text-protocol `PREPARE`.
    SqlPrepare,
    /// `SQL_CALC_FOUND_ROWS` (its `FOUND_ROWS()` belongs to the connection).
    CalcFoundRows,
    /// `HANDLER ... OPEN`.
    Handler,
    /// `XA` transactions.
    Xa,
    /// `SET ROLE`, or a change to the session trackers muxql relies on.
    Untrackable,
}

/// What a statement means for the multiplexer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// The client must stay on its upstream.
    Pin(PinReason),
    /// `UNLOCK TABLES`: a table lock pin ends.
    UnlockTables,
    /// Reads `LAST_INSERT_ID()`: the client's own value must be in place.
    LastInsertId,
    /// Reads a value of the previous statement on the connection (`ROW_COUNT()`,
    /// `FOUND_ROWS()`, `SHOW WARNINGS`, `SHOW ERRORS`, `@@warning_count`, `@@error_count`).
    PreviousResult,
    /// `KILL [CONNECTION | QUERY] <id>`: `query` is true for `KILL QUERY`.
    Kill {
        /// Only the running statement is killed.
        query: bool,
        /// The connection id named.
        id: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token<'a> {
    Word(&'a [u8]),
    UserVar,
    SysVar(&'a [u8]),
    Number(&'a [u8]),
    Punct(u8),
    Assign,
    Other,
}

/// Calls `f` with every effect of `sql` (one or several statements), in order.
pub fn for_each_effect(sql: &[u8], mut f: impl FnMut(Effect)) {
    let mut lexer = Lexer { sql, pos: 0 };
    let mut stmt: Vec<Token<'_>> = Vec::new();
    loop {
        let token = lexer.next();
        match token {
            None | Some(Token::Punct(b';')) => {
                statement_effects(&stmt, &mut f);
                stmt.clear();
                if token.is_none() {
                    return;
                }
            }
            Some(t) => stmt.push(t),
        }
    }
}

/// `sql` with every `ROW_COUNT()` call replaced by `(row_count)`, every `@@warning_count` by
/// `(warning_count)` and every `@@error_count` by `(error_count)`; `None` when it has none. A multiplexer knows each client's own
/// values (from its last OK or EOF), while these read the connection's previous statement,
/// which may have been another client's.
pub fn replace_previous_values(
    sql: &[u8],
    row_count: i64,
    warning_count: u16,
    error_count: u16,
) -> Option<Vec<u8>> {
    let mut lexer = Lexer { sql, pos: 0 };
    let mut out = Vec::new();
    let mut copied = 0;
    while let Some(token) = lexer.next() {
        let (start, end, value) = match token {
            Token::Word(w) if w.eq_ignore_ascii_case(b"ROW_COUNT") => {
                let start = lexer.pos - w.len();
                let mut call = lexer.clone_at();
                if call.next() != Some(Token::Punct(b'('))
                    || call.next() != Some(Token::Punct(b')'))
                {
                    continue;
                }
                (start, call.pos, row_count)
            }
            Token::SysVar(name) => {
                let bare = name.rsplit(|&b| b == b'.').next().unwrap_or(name);
                let session = name.len() == bare.len()
                    || name[..name.len() - bare.len() - 1].eq_ignore_ascii_case(b"session");
                let value = if bare.eq_ignore_ascii_case(b"warning_count") {
                    warning_count
                } else if bare.eq_ignore_ascii_case(b"error_count") {
                    error_count
                } else {
                    continue;
                };
                if !session {
                    continue;
                }
                (lexer.pos - name.len() - 2, lexer.pos, i64::from(value))
            }
            _ => continue,
        };
        out.extend_from_slice(&sql[copied..start]);
        out.extend_from_slice(format!("({value})").as_bytes());
        copied = end;
        lexer.pos = end;
    }
    if copied == 0 {
        return None;
    }
    out.extend_from_slice(&sql[copied..]);
    Some(out)
}

/// The diagnostics statement a query is, if it is one: these read the connection's last
/// statement, which a multiplexer must answer with the client's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShowDiagnostics {
    /// `SHOW WARNINGS [LIMIT ...]`.
    Warnings,
    /// `SHOW ERRORS [LIMIT ...]`.
    Errors,
    /// `SHOW COUNT(*) WARNINGS`.
    WarningCount,
    /// `SHOW COUNT(*) ERRORS`.
    ErrorCount,
}

/// Which of `SHOW [COUNT(*)] WARNINGS | ERRORS [LIMIT ...]` `sql` is (any case, blanks,
/// comments, a final `;`); `None` for anything else.
pub fn show_diagnostics(sql: &[u8]) -> Option<ShowDiagnostics> {
    let mut lexer = Lexer { sql, pos: 0 };
    if !matches!(lexer.next(), Some(Token::Word(w)) if w.eq_ignore_ascii_case(b"SHOW")) {
        return None;
    }
    let mut word = lexer.next();
    let count = matches!(word, Some(Token::Word(w)) if w.eq_ignore_ascii_case(b"COUNT"));
    if count {
        let call = [lexer.next(), lexer.next(), lexer.next()];
        if !matches!(
            call,
            [
                Some(Token::Punct(b'(')),
                Some(Token::Other),
                Some(Token::Punct(b')'))
            ]
        ) {
            return None;
        }
        word = lexer.next();
    }
    let kind = match (word, count) {
        (Some(Token::Word(w)), false) if w.eq_ignore_ascii_case(b"WARNINGS") => {
            ShowDiagnostics::Warnings
        }
        (Some(Token::Word(w)), false) if w.eq_ignore_ascii_case(b"ERRORS") => {
            ShowDiagnostics::Errors
        }
        (Some(Token::Word(w)), true) if w.eq_ignore_ascii_case(b"WARNINGS") => {
            ShowDiagnostics::WarningCount
        }
        (Some(Token::Word(w)), true) if w.eq_ignore_ascii_case(b"ERRORS") => {
            ShowDiagnostics::ErrorCount
        }
        _ => return None,
    };
    let mut next = lexer.next();
    if !count && matches!(next, Some(Token::Word(w)) if w.eq_ignore_ascii_case(b"LIMIT")) {
        next = lexer.next();
        while matches!(next, Some(Token::Number(_) | Token::Punct(b','))) {
            next = lexer.next();
        }
    }
    if matches!(next, Some(Token::Punct(b';'))) {
        next = lexer.next();
    }
    next.is_none().then_some(kind)
}

/// Whether `sql` is one SELECT, INSERT, UPDATE, DELETE or REPLACE with no effect at all: in
/// autocommit mode it runs in its own transaction and leaves nothing on the connection.
pub fn is_autocommit_statement(sql: &[u8]) -> bool {
    let mut lexer = Lexer { sql, pos: 0 };
    let Some(Token::Word(first)) = lexer.next() else {
        return false;
    };
    let plain = ["SELECT", "INSERT", "UPDATE", "DELETE", "REPLACE"]
        .iter()
        .any(|k| first.eq_ignore_ascii_case(k.as_bytes()));
    if !plain {
        return false;
    }
    let mut statements = 1;
    while let Some(t) = lexer.next() {
        if t == Token::Punct(b';') {
            statements += 1;
        }
    }
    let trailing_semicolon = sql.iter().rev().find(|b| !b.is_ascii_whitespace()) == Some(&b';');
    let mut effects = false;
    for_each_effect(sql, |_| effects = true);
    !effects && (statements == 1 || (statements == 2 && trailing_semicolon))
}

fn is_word(t: &Token<'_>, kw: &str) -> bool {
    matches!(t, Token::Word(w) if w.eq_ignore_ascii_case(kw.as_bytes()))
}

fn statement_effects(tokens: &[Token<'_>], f: &mut impl FnMut(Effect)) {
    let Some(first) = tokens.first() else {
        return;
    };
    let word = |i: usize, kw: &str| tokens.get(i).is_some_and(|t| is_word(t, kw));
    if is_word(first, "KILL") {
        let (query, at) = if word(1, "QUERY") {
            (true, 2)
        } else if word(1, "CONNECTION") {
            (false, 2)
        } else {
            (false, 1)
        };
        if let Some(Token::Number(n)) = tokens.get(at) {
            if let Some(id) = std::str::from_utf8(n).ok().and_then(|s| s.parse().ok()) {
                f(Effect::Kill { query, id });
            }
        }
        return;
    }
    if is_word(first, "LOCK") && (word(1, "TABLES") || word(1, "TABLE")) {
        f(Effect::Pin(PinReason::LockTables));
    }
    if is_word(first, "UNLOCK") && (word(1, "TABLES") || word(1, "TABLE")) {
        f(Effect::UnlockTables);
    }
    if is_word(first, "FLUSH") && tokens.iter().any(|t| is_word(t, "LOCK")) {
        f(Effect::Pin(PinReason::LockTables));
    }
    if is_word(first, "PREPARE") {
        f(Effect::Pin(PinReason::SqlPrepare));
    }
    if is_word(first, "HANDLER") {
        f(Effect::Pin(PinReason::Handler));
    }
    if is_word(first, "XA") {
        f(Effect::Pin(PinReason::Xa));
    }
    if is_word(first, "SHOW")
        && tokens[1..]
            .iter()
            .take(6)
            .any(|t| is_word(t, "WARNINGS") || is_word(t, "ERRORS"))
    {
        f(Effect::PreviousResult);
    }
    let is_set = is_word(first, "SET");
    if is_set && word(1, "ROLE") {
        f(Effect::Pin(PinReason::Untrackable));
    }
    for (i, t) in tokens.iter().enumerate() {
        let next = tokens.get(i + 1);
        match t {
            Token::UserVar => {
                let assigned = matches!(next, Some(Token::Assign))
                    || (is_set && matches!(next, Some(Token::Punct(b'='))))
                    || (i > 0 && is_word(&tokens[i - 1], "INTO"));
                if assigned {
                    f(Effect::Pin(PinReason::UserVariable));
                }
            }
            Token::SysVar(name) => {
                let name = name.rsplit(|&b| b == b'.').next().unwrap_or(name);
                if name.eq_ignore_ascii_case(b"warning_count")
                    || name.eq_ignore_ascii_case(b"error_count")
                {
                    f(Effect::PreviousResult);
                }
                if is_set && starts_with_ci(name, b"session_track") {
                    f(Effect::Pin(PinReason::Untrackable));
                }
            }
            Token::Word(w) => {
                if is_set && starts_with_ci(w, b"session_track") {
                    f(Effect::Pin(PinReason::Untrackable));
                } else if w.eq_ignore_ascii_case(b"TEMPORARY")
                    && i > 0
                    && is_word(&tokens[i - 1], "CREATE")
                {
                    f(Effect::Pin(PinReason::TemporaryTable));
                } else if w.eq_ignore_ascii_case(b"GET_LOCK") {
                    f(Effect::Pin(PinReason::NamedLock));
                } else if w.eq_ignore_ascii_case(b"SQL_CALC_FOUND_ROWS") {
                    f(Effect::Pin(PinReason::CalcFoundRows));
                } else if w.eq_ignore_ascii_case(b"LAST_INSERT_ID") {
                    f(Effect::LastInsertId);
                } else if w.eq_ignore_ascii_case(b"ROW_COUNT")
                    || w.eq_ignore_ascii_case(b"FOUND_ROWS")
                {
                    f(Effect::PreviousResult);
                }
            }
            _ => {}
        }
    }
}

fn starts_with_ci(s: &[u8], prefix: &[u8]) -> bool {
    s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix)
}

struct Lexer<'a> {
    sql: &'a [u8],
    pos: usize,
}

impl<'a> Lexer<'a> {
    /// A lexer that goes on from where this one is.
    fn clone_at(&self) -> Lexer<'a> {
        Lexer {
            sql: self.sql,
            pos: self.pos,
        }
    }

    fn peek_at(&self, i: usize) -> u8 {
        self.sql.get(self.pos + i).copied().unwrap_or(0)
    }

    /// Skips a quoted run opened by `quote` at `self.pos`; backslash escapes and doubled
    /// quotes stay inside.
    fn skip_quoted(&mut self, quote: u8) {
        self.pos += 1;
        while let Some(&b) = self.sql.get(self.pos) {
            self.pos += 1;
            if b == b'\\' && quote != b'`' {
                self.pos += 1;
            } else if b == quote {
                if self.sql.get(self.pos) == Some(&quote) {
                    self.pos += 1;
                } else {
                    return;
                }
            }
        }
    }

    fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'a [u8] {
        let start = self.pos;
        while self.sql.get(self.pos).is_some_and(|&b| f(b)) {
            self.pos += 1;
        }
        &self.sql[start..self.pos]
    }

    /// The next token, skipping blanks and comments; `None` at the end.
    fn next(&mut self) -> Option<Token<'a>> {
        loop {
            let b = *self.sql.get(self.pos)?;
            match b {
                b' ' | b'\t' | b'\r' | b'\n' | 0x0b | 0x0c => self.pos += 1,
                b'#' => self.skip_line(),
                b'-' if self.peek_at(1) == b'-' && matches!(self.peek_at(2), 0..=b' ') => {
                    self.skip_line()
                }
                b'/' if self.peek_at(1) == b'*' => {
                    // `/*! ... */` and `/*M! ... */` are executed: lex their contents.
                    let executable = self.peek_at(2) == b'!'
                        || (self.peek_at(2) == b'M' && self.peek_at(3) == b'!');
                    if executable {
                        self.pos += if self.peek_at(2) == b'!' { 3 } else { 4 };
                        self.take_while(|b| b.is_ascii_digit());
                    } else {
                        self.pos += 2;
                        while self.pos < self.sql.len()
                            && !(self.peek_at(0) == b'*' && self.peek_at(1) == b'/')
                        {
                            self.pos += 1;
                        }
                        self.pos = (self.pos + 2).min(self.sql.len());
                    }
                }
                b'*' if self.peek_at(1) == b'/' => self.pos += 2,
                b'\'' | b'"' => {
                    self.skip_quoted(b);
                    return Some(Token::Other);
                }
                b'`' => {
                    let start = self.pos + 1;
                    self.skip_quoted(b'`');
                    let end = self.pos.saturating_sub(1).max(start);
                    return Some(Token::Word(&self.sql[start..end]));
                }
                b'@' if self.peek_at(1) == b'@' => {
                    self.pos += 2;
                    let name = self.take_while(|b| is_ident(b) || b == b'.');
                    return Some(Token::SysVar(name));
                }
                b'@' => {
                    self.pos += 1;
                    match self.peek_at(0) {
                        q @ (b'\'' | b'"' | b'`') => self.skip_quoted(q),
                        _ => {
                            self.take_while(is_ident);
                        }
                    }
                    return Some(Token::UserVar);
                }
                b':' if self.peek_at(1) == b'=' => {
                    self.pos += 2;
                    return Some(Token::Assign);
                }
                b if b.is_ascii_digit() => {
                    let n = self.take_while(|b| is_ident(b) || b == b'.');
                    return Some(Token::Number(n));
                }
                b if is_ident(b) => return Some(Token::Word(self.take_while(is_ident))),
                b';' | b'=' | b'(' | b')' | b',' => {
                    self.pos += 1;
                    return Some(Token::Punct(b));
                }
                _ => {
                    self.pos += 1;
                    return Some(Token::Other);
                }
            }
        }
    }

    fn skip_line(&mut self) {
        while self.sql.get(self.pos).is_some_and(|&b| b != b'\n') {
            self.pos += 1;
        }
    }
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

#[cfg(test)]
mod tests {
    use super::*;

    fn effects(sql: &str) -> Vec<Effect> {
        let mut v = Vec::new();
        for_each_effect(sql.as_bytes(), |e| v.push(e));
        v
    }

    fn pin(r: PinReason) -> Vec<Effect> {
        vec![Effect::Pin(r)]
    }

    #[test]
    fn plain_statements_have_no_effect() {
        for sql in [
            "SELECT c FROM sbtest1 WHERE id=42",
            "UPDATE t SET a = 1 WHERE b = '@x := 1'",
            "SET time_zone = '+00:00'",
            "SET NAMES utf8mb4",
            "SET @@session.sql_mode = 'ANSI'",
            "select 1 -- @a := 2",
            "select 1 # SQL_CALC_FOUND_ROWS",
            "select /* GET_LOCK('x', 1) */ 1",
            "SELECT @a",
            "INSERT INTO t VALUES ('a\\'@b := 1')",
            "DROP TEMPORARY TABLE t",
            "BEGIN; COMMIT",
        ] {
            assert_eq!(effects(sql), vec![], "{sql}");
        }
    }

    #[test]
    fn session_state_the_trackers_miss_pins() {
        assert_eq!(effects("SET @a = 1"), pin(PinReason::UserVariable));
        assert_eq!(effects("set @`a b`=1"), pin(PinReason::UserVariable));
        assert_eq!(
            effects("SELECT @n := @n + 1 FROM t"),
            pin(PinReason::UserVariable)
        );
        assert_eq!(effects("SELECT 1 INTO @x"), pin(PinReason::UserVariable));
        assert_eq!(
            effects("CREATE TEMPORARY TABLE t (a int)"),
            pin(PinReason::TemporaryTable)
        );
        assert_eq!(
            effects("SELECT GET_LOCK('l', 10)"),
            pin(PinReason::NamedLock)
        );
        assert_eq!(effects("LOCK TABLES t READ"), pin(PinReason::LockTables));
        assert_eq!(
            effects("FLUSH TABLES WITH READ LOCK"),
            pin(PinReason::LockTables)
        );
        assert_eq!(effects("UNLOCK TABLES"), vec![Effect::UnlockTables]);
        assert_eq!(
            effects("PREPARE s FROM 'SELECT 1'"),
            pin(PinReason::SqlPrepare)
        );
        assert_eq!(
            effects("SELECT SQL_CALC_FOUND_ROWS * FROM t LIMIT 1"),
            pin(PinReason::CalcFoundRows)
        );
        assert_eq!(effects("HANDLER t OPEN"), pin(PinReason::Handler));
        assert_eq!(effects("XA START 'x'"), pin(PinReason::Xa));
        assert_eq!(effects("SET ROLE r"), pin(PinReason::Untrackable));
        assert_eq!(
            effects("SET session_track_schema = OFF"),
            pin(PinReason::Untrackable)
        );
        assert_eq!(
            effects("/*!40101 SET @saved := @@sql_mode */"),
            pin(PinReason::UserVariable)
        );
    }

    #[test]
    fn per_connection_values_are_found() {
        assert_eq!(
            effects("SELECT LAST_INSERT_ID()"),
            vec![Effect::LastInsertId]
        );
        assert_eq!(effects("select row_count()"), vec![Effect::PreviousResult]);
        assert_eq!(effects("SELECT FOUND_ROWS()"), vec![Effect::PreviousResult]);
        assert_eq!(effects("SHOW WARNINGS"), vec![Effect::PreviousResult]);
        assert_eq!(
            effects("SHOW COUNT(*) ERRORS"),
            vec![Effect::PreviousResult]
        );
        assert_eq!(
            effects("SELECT @@warning_count"),
            vec![Effect::PreviousResult]
        );
    }

    #[test]
    fn autocommit_statements_are_single_plain_dml() {
        for sql in [
            "SELECT c FROM sbtest1 WHERE id=1",
            "  insert into t values (1);",
            "UPDATE t SET a = a + 1",
            "/* hint */ DELETE FROM t",
        ] {
            assert!(is_autocommit_statement(sql.as_bytes()), "{sql}");
        }
        for sql in [
            "BEGIN",
            "SET a = 1",
            "SELECT 1; SELECT 2",
            "SELECT LAST_INSERT_ID()",
            "SELECT @a := 1",
            "SELECT GET_LOCK('a', 1)",
            "",
            "CALL p()",
        ] {
            assert!(!is_autocommit_statement(sql.as_bytes()), "{sql}");
        }
    }

    #[test]
    fn previous_values_are_replaced_by_the_clients_own() {
        let r = |sql: &str, v| {
            replace_previous_values(sql.as_bytes(), v, 7, 1).map(|o| String::from_utf8(o).unwrap())
        };
        assert_eq!(r("SELECT ROW_COUNT()", 3).as_deref(), Some("SELECT (3)"));
        assert_eq!(
            r(
                "select row_count ( ) AS n, 'ROW_COUNT()', ROW_COUNT()+1",
                -1
            )
            .as_deref(),
            Some("select (-1) AS n, 'ROW_COUNT()', (-1)+1")
        );
        assert_eq!(r("SELECT 1 -- ROW_COUNT()", 2), None);
        assert_eq!(
            r("SELECT row_count FROM t", 2),
            None,
            "a column, not the function"
        );
        assert_eq!(
            r(
                "SELECT @@warning_count, @@session.warning_count, @@global.warning_count",
                0
            )
            .as_deref(),
            Some("SELECT (7), (7), @@global.warning_count")
        );
        assert_eq!(
            r("SELECT @@error_count, @@ERROR_COUNT + 1", 0).as_deref(),
            Some("SELECT (1), (1) + 1")
        );
    }

    #[test]
    fn diagnostics_statements_are_recognised_alone() {
        use ShowDiagnostics::*;
        for (sql, kind) in [
            ("SHOW WARNINGS", Warnings),
            (" show  warnings ;", Warnings),
            ("/* x */ SHOW WARNINGS", Warnings),
            ("SHOW WARNINGS LIMIT 1", Warnings),
            ("SHOW WARNINGS LIMIT 2, 3", Warnings),
            ("show errors", Errors),
            ("SHOW COUNT(*) WARNINGS", WarningCount),
            ("SHOW COUNT ( * ) ERRORS;", ErrorCount),
        ] {
            assert_eq!(show_diagnostics(sql.as_bytes()), Some(kind), "{sql}");
        }
        for sql in [
            "SHOW",
            "SHOW WARNINGS; SELECT 1",
            "SHOW COUNT(*) WARNINGS LIMIT 1",
            "SHOW TABLES",
            "SELECT 'SHOW WARNINGS'",
        ] {
            assert_eq!(show_diagnostics(sql.as_bytes()), None, "{sql}");
        }
    }

    #[test]
    fn kill_names_its_target() {
        assert_eq!(
            effects("KILL QUERY 42"),
            vec![Effect::Kill {
                query: true,
                id: 42
            }]
        );
        assert_eq!(
            effects("kill connection 7"),
            vec![Effect::Kill {
                query: false,
                id: 7
            }]
        );
        assert_eq!(
            effects("KILL 9"),
            vec![Effect::Kill {
                query: false,
                id: 9
            }]
        );
    }

    #[test]
    fn each_statement_of_a_batch_counts() {
        assert_eq!(
            effects("SELECT 1; SET @a = 1; SELECT LAST_INSERT_ID()"),
            vec![Effect::Pin(PinReason::UserVariable), Effect::LastInsertId]
        );
    }

    proptest::proptest! {
        #[test]
        fn any_input_lexes_without_panic(sql in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            for_each_effect(&sql, |_| {});
        }
    }
}
