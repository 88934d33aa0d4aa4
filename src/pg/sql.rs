//! A small SQL lexer and classifier that finds statements whose effects outlive a transaction.
//!
//! The multiplexer runs [`for_each_effect`] on every simple Query and every Parse, so the common
//! case (no effect) is one linear pass over the bytes without allocation: each statement is
//! classified by its first key word, and only identifiers are compared against the few names
//! that matter. Strings are built only for [`Effect::Set`] and [`Effect::Reset`].
//!
//! The lexer follows the PostgreSQL manual, section 4.1 "Lexical Structure"
//! (sql-syntax-lexical): 4.1.1 identifiers (`$` allowed after the first character, `"..."` with
//! `""`, `U&"..."`), 4.1.2 string constants (`'...'` with `''`, `E'...'` with backslash escapes,
//! `U&'...'`, `B'...'`, `X'...'`, `N'...'`, continuation across a newline, dollar quoting
//! `$tag$...$tag$`), 4.1.4 positional parameters (`$1`) and 4.1.5 comments (`--` and nested
//! `/* */`). `standard_conforming_strings` is assumed on. It works on bytes, so any
//! ASCII-compatible client encoding is fine.

/// A statement effect that outlives the transaction it runs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// `SET [SESSION] name {TO|=} value`, `SET TIME ZONE v` (name "timezone"), `SET SCHEMA 'x'`
    /// (name "search_path"), `SET NAMES 'x'` (name "client_encoding"), `SET XML OPTION v`
    /// (name "xmloption"). `name` is lower-cased (unless it was a quoted identifier, then as
    /// written; dotted custom names like `myapp.x` kept whole), `value` is the exact SQL source
    /// text of the value list (e.g. `'$user', public`, `'UTC'`), which `SET name TO value`
    /// replays. `SET SESSION CHARACTERISTICS AS TRANSACTION ...` is reported as the equivalent
    /// `default_transaction_isolation`, `default_transaction_read_only` and
    /// `default_transaction_deferrable` settings, with values such as `'repeatable read'`, `on`.
    Set {
        /// Parameter name.
        name: String,
        /// Source text of the value list.
        value: String,
    },
    /// `SET name TO DEFAULT` / `RESET name` (also `SET TIME ZONE LOCAL`, `SET NAMES`,
    /// `SET ROLE NONE`, `SET SESSION AUTHORIZATION DEFAULT`).
    Reset {
        /// Parameter name, as for [`Effect::Set`].
        name: String,
    },
    /// `RESET ALL`.
    ResetAll,
    /// `DISCARD ALL`.
    DiscardAll,
    /// A statement creating state that cannot be replayed on another server connection.
    Pin(PinReason),
}

/// Why a statement ties a client to its server connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinReason {
    /// `LISTEN channel`.
    Listen,
    /// SQL-level `PREPARE name AS ...` (not `PREPARE TRANSACTION`).
    Prepare,
    /// `DECLARE cursor ... WITH HOLD`.
    HoldCursor,
    /// A temporary table, view, sequence or other object in `pg_temp`.
    TempObject,
    /// A call of a session-level advisory lock function.
    AdvisoryLock,
    /// `SET ROLE name` (or `SET role TO name`).
    SetRole,
    /// `SET SESSION AUTHORIZATION name`.
    SessionAuthorization,
    /// `LOAD 'library'`.
    Load,
}

/// Calls `f` for every effect in `sql` (which may hold many `;`-separated statements), in order.
///
/// Within one statement, a session advisory lock call is reported once, after the statement's
/// other effects. Malformed SQL never panics; the server rejects it anyway.
pub fn for_each_effect(sql: &[u8], mut f: impl FnMut(Effect)) {
    let mut lexer = Lexer { sql, pos: 0 };
    while lexer.pos < sql.len() {
        let mut statement = Statement::new(&mut lexer);
        statement.classify(&mut f);
        statement.finish(&mut f);
    }
}

/// Convenience: collect into a Vec.
pub fn effects(sql: &[u8]) -> Vec<Effect> {
    let mut out = Vec::new();
    for_each_effect(sql, |effect| out.push(effect));
    out
}

/// The session-level advisory lock functions; their `_xact_` variants are released at commit.
const ADVISORY_LOCKS: [&[u8]; 4] = [
    b"pg_advisory_lock",
    b"pg_advisory_lock_shared",
    b"pg_try_advisory_lock",
    b"pg_try_advisory_lock_shared",
];

/// Key words that may follow `SELECT ... INTO temp`, where `temp` is then a table name.
const CLAUSES_AFTER_INTO: [&[u8]; 13] = [
    b"from",
    b"where",
    b"group",
    b"having",
    b"window",
    b"order",
    b"limit",
    b"offset",
    b"fetch",
    b"for",
    b"union",
    b"intersect",
    b"except",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Unquoted identifier or key word.
    Word,
    /// `"..."` or `U&"..."`.
    QuotedIdent,
    /// Any string constant, prefix included: `'..'`, `E'..'`, `U&'..'`, `$tag$..$tag$`, ...
    Str,
    /// Numeric constant or positional parameter.
    Number,
    /// One byte of punctuation or of an operator.
    Punct(u8),
}

#[derive(Debug, Clone, Copy)]
struct Token {
    kind: Kind,
    start: usize,
    end: usize,
}

/// Splits bytes into tokens, skipping whitespace and comments.
struct Lexer<'a> {
    sql: &'a [u8],
    pos: usize,
}

impl<'a> Lexer<'a> {
    fn byte(&self, i: usize) -> Option<u8> {
        self.sql.get(i).copied()
    }

    fn next_token(&mut self) -> Option<Token> {
        self.skip_blank();
        let start = self.pos;
        let kind = match self.byte(start)? {
            b'\'' => self.until(self.quoted_end(start + 1, b'\''), Kind::Str),
            b'"' => self.until(self.quoted_end(start + 1, b'"'), Kind::QuotedIdent),
            b'$' => self.dollar(start),
            b'0'..=b'9' => self.until(self.scan_while(start + 1, is_number_byte), Kind::Number),
            b if is_ident_start(b) => self.word(start),
            b => self.until(start + 1, Kind::Punct(b)),
        };
        Some(Token {
            kind,
            start,
            end: self.pos,
        })
    }

    fn until(&mut self, end: usize, kind: Kind) -> Kind {
        self.pos = end;
        kind
    }

    fn skip_blank(&mut self) {
        loop {
            let next = self.byte(self.pos + 1);
            self.pos = match (self.byte(self.pos), next) {
                (Some(b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c), _) => self.pos + 1,
                (Some(b'-'), Some(b'-')) => self.line_end(self.pos + 2),
                (Some(b'/'), Some(b'*')) => self.block_comment_end(self.pos + 2),
                _ => return,
            }
        }
    }

    fn scan_while(&self, from: usize, pred: fn(u8) -> bool) -> usize {
        let rest = self.sql.get(from..).unwrap_or_default();
        from + rest.iter().position(|&b| !pred(b)).unwrap_or(rest.len())
    }

    fn line_end(&self, from: usize) -> usize {
        self.scan_while(from, |b| b != b'\n' && b != b'\r')
    }

    /// Block comments nest: `/* a /* b */ c */` is one comment.
    fn block_comment_end(&self, from: usize) -> usize {
        let mut depth = 1usize;
        let mut i = from;
        while let Some(b) = self.byte(i) {
            match (b, self.byte(i + 1)) {
                (b'/', Some(b'*')) => {
                    depth += 1;
                    i += 2;
                }
                (b'*', Some(b'/')) => {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        return i;
                    }
                }
                _ => i += 1,
            }
        }
        self.sql.len()
    }

    /// End of a constant closed by `quote`, where a doubled `quote` stands for itself.
    fn quoted_end(&self, from: usize, quote: u8) -> usize {
        let mut i = from;
        loop {
            let rest = self.sql.get(i..).unwrap_or_default();
            match rest.iter().position(|&b| b == quote) {
                None => return self.sql.len(),
                Some(at) if self.byte(i + at + 1) == Some(quote) => i += at + 2,
                Some(at) => return i + at + 1,
            }
        }
    }

    /// End of an `E'...'` constant: backslash escapes the next byte, and a continuation
    /// segment after a newline keeps escape semantics.
    fn escape_string_end(&self, from: usize) -> usize {
        let mut i = from;
        while let Some(b) = self.byte(i) {
            match (b, self.byte(i + 1)) {
                (b'\\', _) | (b'\'', Some(b'\'')) => i += 2,
                (b'\'', _) => match self.continuation(i + 1) {
                    Some(quote) => i = quote + 1,
                    None => return i + 1,
                },
                _ => i += 1,
            }
        }
        self.sql.len()
    }

    /// Position of the quote opening a continuation segment: only whitespace and `--` comments,
    /// including at least one newline, separate it from the previous segment.
    fn continuation(&self, from: usize) -> Option<usize> {
        let mut newline = false;
        let mut i = from;
        loop {
            match (self.byte(i)?, self.byte(i + 1)) {
                (b' ' | b'\t' | 0x0b | 0x0c, _) => i += 1,
                (b'\n' | b'\r', _) => {
                    newline = true;
                    i += 1;
                }
                (b'-', Some(b'-')) => i = self.line_end(i + 2),
                (b'\'', _) if newline => return Some(i),
                _ => return None,
            }
        }
    }

    /// `$1` is a parameter, `$tag$` opens a dollar quote, any other `$` is punctuation.
    fn dollar(&mut self, start: usize) -> Kind {
        if self.byte(start + 1).is_some_and(|b| b.is_ascii_digit()) {
            return self.until(self.scan_while(start + 1, |b| b.is_ascii_digit()), Kind::Number);
        }
        let Some(body) = self.dollar_tag_end(start + 1) else {
            return self.until(start + 1, Kind::Punct(b'$'));
        };
        let delimiter = self.sql.get(start..body).unwrap_or_default();
        let rest = self.sql.get(body..).unwrap_or_default();
        let end = find(rest, delimiter).map_or(self.sql.len(), |at| body + at + delimiter.len());
        self.until(end, Kind::Str)
    }

    /// End of `tag$` starting at `from`; a tag follows identifier rules, without `$`.
    fn dollar_tag_end(&self, from: usize) -> Option<usize> {
        let end = match self.byte(from) {
            Some(b) if is_ident_start(b) => self.scan_while(from + 1, is_tag_byte),
            _ => from,
        };
        (self.byte(end) == Some(b'$')).then_some(end + 1)
    }

    /// An identifier, or a string with a one-letter prefix (`E'`, `B'`, `X'`, `N'`, `U&'`, `U&"`).
    fn word(&mut self, start: usize) -> Kind {
        let end = self.scan_while(start + 1, is_ident_cont);
        let prefix = match end - start {
            1 => self.byte(start).map(|b| b.to_ascii_lowercase()),
            _ => None,
        };
        match (prefix, self.byte(end), self.byte(end + 1)) {
            (Some(b'e'), Some(b'\''), _) => self.until(self.escape_string_end(end + 1), Kind::Str),
            (Some(b'b' | b'x' | b'n'), Some(b'\''), _) => {
                self.until(self.quoted_end(end + 1, b'\''), Kind::Str)
            }
            (Some(b'u'), Some(b'&'), Some(b'\'')) => {
                self.until(self.quoted_end(end + 2, b'\''), Kind::Str)
            }
            (Some(b'u'), Some(b'&'), Some(b'"')) => {
                self.until(self.quoted_end(end + 2, b'"'), Kind::QuotedIdent)
            }
            _ => self.until(end, Kind::Word),
        }
    }
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

fn is_tag_byte(b: u8) -> bool {
    is_ident_start(b) || b.is_ascii_digit()
}

fn is_ident_cont(b: u8) -> bool {
    is_tag_byte(b) || b == b'$'
}

fn is_number_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'.'
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The text between the quotes of a quoted identifier (`"..."` or `U&"..."`), still escaped.
fn quoted_inner(text: &[u8]) -> &[u8] {
    let open = text.iter().position(|&b| b == b'"').map_or(0, |at| at + 1);
    let inner = text.get(open..).unwrap_or_default();
    match inner.split_last() {
        Some((b'"', head)) => head,
        _ => inner,
    }
}

/// The tokens of one statement, up to a `;` outside parentheses, with one token of lookahead.
/// Every token is also checked for a session advisory lock call.
struct Statement<'l, 'a> {
    lexer: &'l mut Lexer<'a>,
    peeked: Option<Option<Token>>,
    depth: usize,
    done: bool,
    after_lock_name: bool,
    locks: bool,
}

impl<'l, 'a> Statement<'l, 'a> {
    fn new(lexer: &'l mut Lexer<'a>) -> Self {
        Statement {
            lexer,
            peeked: None,
            depth: 0,
            done: false,
            after_lock_name: false,
            locks: false,
        }
    }

    fn pull(&mut self) -> Option<Token> {
        if self.done {
            return None;
        }
        let Some(token) = self.lexer.next_token() else {
            self.done = true;
            return None;
        };
        match token.kind {
            Kind::Punct(b';') if self.depth == 0 => {
                self.done = true;
                return None;
            }
            Kind::Punct(b'(') => {
                self.locks |= self.after_lock_name;
                self.depth += 1;
            }
            Kind::Punct(b')') => self.depth = self.depth.saturating_sub(1),
            _ => {}
        }
        self.after_lock_name = self.is_lock_name(token);
        Some(token)
    }

    fn next(&mut self) -> Option<Token> {
        match self.peeked.take() {
            Some(token) => token,
            None => self.pull(),
        }
    }

    fn peek(&mut self) -> Option<Token> {
        match self.peeked {
            Some(token) => token,
            None => {
                let token = self.pull();
                self.peeked = Some(token);
                token
            }
        }
    }

    fn text(&self, token: Token) -> &'a [u8] {
        let sql: &'a [u8] = self.lexer.sql;
        sql.get(token.start..token.end).unwrap_or_default()
    }

    /// Whether `token` is the key word `keyword` (given in lower case).
    fn is(&self, token: Token, keyword: &[u8]) -> bool {
        token.kind == Kind::Word && self.text(token).eq_ignore_ascii_case(keyword)
    }

    fn peek_is(&mut self, keyword: &[u8]) -> bool {
        self.peek().is_some_and(|token| self.is(token, keyword))
    }

    fn peek_is_punct(&mut self, punct: u8) -> bool {
        self.peek().is_some_and(|token| token.kind == Kind::Punct(punct))
    }

    /// Consumes the next token if it is the key word `keyword`.
    fn eat(&mut self, keyword: &[u8]) -> bool {
        let found = self.peek_is(keyword);
        if found {
            self.next();
        }
        found
    }

    /// Consumes the next token if it is the punctuation `punct`.
    fn eat_punct(&mut self, punct: u8) -> bool {
        let found = self.peek_is_punct(punct);
        if found {
            self.next();
        }
        found
    }

    fn is_lock_name(&self, token: Token) -> bool {
        let text = self.text(token);
        match token.kind {
            Kind::Word => ADVISORY_LOCKS.iter().any(|n| text.eq_ignore_ascii_case(n)),
            Kind::QuotedIdent => ADVISORY_LOCKS.contains(&quoted_inner(text)),
            _ => false,
        }
    }

    /// Whether `token` names the temporary schema (`pg_temp` or `pg_temp_<n>`).
    fn is_temp_schema(&self, token: Token) -> bool {
        let name = match token.kind {
            Kind::Word => self.text(token),
            Kind::QuotedIdent => quoted_inner(self.text(token)),
            _ => return false,
        };
        let Some((prefix, suffix)) = name.split_at_checked(7) else {
            return false;
        };
        let folded = token.kind == Kind::Word;
        let pg_temp = if folded {
            prefix.eq_ignore_ascii_case(b"pg_temp")
        } else {
            prefix == b"pg_temp"
        };
        pg_temp
            && match suffix.split_first() {
                None => true,
                Some((b'_', digits)) => {
                    !digits.is_empty() && digits.iter().all(u8::is_ascii_digit)
                }
                Some(_) => false,
            }
    }

    /// Whether `token` is `pg_temp` followed by `.`, qualifying an object name.
    fn is_temp_qualifier(&mut self, token: Token) -> bool {
        self.is_temp_schema(token) && self.peek_is_punct(b'.')
    }

    fn classify(&mut self, f: &mut dyn FnMut(Effect)) {
        let Some(first) = self.next() else { return };
        if first.kind == Kind::Punct(b'(') {
            return self.select_into(f);
        }
        let word = match first.kind {
            Kind::Word => self.text(first),
            _ => return,
        };
        let keyword = |k: &[u8]| word.eq_ignore_ascii_case(k);
        if keyword(b"set") {
            self.set(f);
        } else if keyword(b"reset") {
            self.reset(f);
        } else if keyword(b"select") || keyword(b"with") {
            self.select_into(f);
        } else if keyword(b"discard") {
            if self.eat(b"all") {
                f(Effect::DiscardAll);
            }
        } else if keyword(b"listen") {
            f(Effect::Pin(PinReason::Listen));
        } else if keyword(b"prepare") {
            self.prepare(f);
        } else if keyword(b"declare") {
            self.declare(f);
        } else if keyword(b"create") {
            self.create(f);
        } else if keyword(b"load") {
            f(Effect::Pin(PinReason::Load));
        }
    }

    /// Drains the statement and reports an advisory lock seen anywhere in it.
    fn finish(mut self, f: &mut dyn FnMut(Effect)) {
        while self.next().is_some() {}
        if self.locks {
            f(Effect::Pin(PinReason::AdvisoryLock));
        }
    }

    fn set(&mut self, f: &mut dyn FnMut(Effect)) {
        let Some(mut token) = self.next() else { return };
        if self.is(token, b"local") {
            return;
        }
        if self.is(token, b"session")
            && !self.peek_is(b"authorization")
            && !self.peek_is(b"characteristics")
        {
            match self.next() {
                Some(next) => token = next,
                None => return,
            }
        }
        self.set_rest(token, f);
    }

    /// The part of `SET` after `LOCAL`/`SESSION`, starting at `token`.
    fn set_rest(&mut self, token: Token, f: &mut dyn FnMut(Effect)) {
        if self.is(token, b"session") {
            if self.eat(b"authorization") {
                self.assign("session_authorization".into(), f);
            } else if self.eat(b"characteristics") {
                self.session_characteristics(f);
            }
        } else if self.is(token, b"transaction") {
            // `SET TRANSACTION ...` lasts until the end of the transaction.
        } else if self.is(token, b"time") && self.eat(b"zone") {
            self.assign("timezone".into(), f);
        } else if self.is(token, b"schema") && self.peek().is_some_and(|t| t.kind == Kind::Str) {
            self.assign("search_path".into(), f);
        } else if self.is(token, b"names") && self.peek().is_none() {
            f(Effect::Reset {
                name: "client_encoding".into(),
            });
        } else if self.is(token, b"names") {
            self.assign("client_encoding".into(), f);
        } else if self.is(token, b"role") && !self.peek_is(b"to") && !self.peek_is_punct(b'=') {
            self.assign("role".into(), f);
        } else if self.is(token, b"xml") && self.eat(b"option") {
            self.assign("xmloption".into(), f);
        } else if let Some(name) = self.var_name(token) {
            if self.eat(b"to") || self.eat_punct(b'=') {
                self.assign(name, f);
            }
        }
    }

    /// Reports the effect of giving `name` the value list that ends the statement.
    fn assign(&mut self, name: String, f: &mut dyn FnMut(Effect)) {
        let Some(first) = self.next() else { return };
        let mut last = first;
        while let Some(token) = self.next() {
            last = token;
        }
        let single = first.start == last.start;
        let value = self.lexer.sql.get(first.start..last.end).unwrap_or_default();
        let resets = single
            && (self.is(first, b"default") || name == "timezone" && self.is(first, b"local"));
        if name.eq_ignore_ascii_case("role") {
            let none = single && (self.is(first, b"none") || value == b"'none'");
            f(match resets || none {
                true => Effect::Reset { name },
                false => Effect::Pin(PinReason::SetRole),
            });
        } else if resets {
            f(Effect::Reset { name });
        } else if name.eq_ignore_ascii_case("session_authorization") {
            f(Effect::Pin(PinReason::SessionAuthorization));
        } else {
            let value = String::from_utf8_lossy(value).into_owned();
            f(Effect::Set { name, value });
        }
    }

    /// A parameter name: identifiers joined by `.`, unquoted parts lower-cased.
    fn var_name(&mut self, first: Token) -> Option<String> {
        let mut name = String::new();
        let mut part = first;
        loop {
            let text = self.text(part);
            match part.kind {
                Kind::Word => name.push_str(&String::from_utf8_lossy(text).to_ascii_lowercase()),
                Kind::QuotedIdent => {
                    let inner = String::from_utf8_lossy(quoted_inner(text));
                    name.push_str(&inner.replace("\"\"", "\""));
                }
                _ => return None,
            }
            if !self.peek_is_punct(b'.') {
                return Some(name);
            }
            self.next();
            name.push('.');
            part = self.next()?;
        }
    }

    /// `SET SESSION CHARACTERISTICS AS TRANSACTION mode [, ...]`, reported as the three
    /// `default_transaction_*` parameters it sets; nothing unless every mode is understood.
    fn session_characteristics(&mut self, f: &mut dyn FnMut(Effect)) {
        if !(self.eat(b"as") && self.eat(b"transaction")) {
            return;
        }
        let mut isolation = None;
        let mut read_only = None;
        let mut deferrable = None;
        while let Some(token) = self.next() {
            if token.kind == Kind::Punct(b',') {
                continue;
            }
            if self.is(token, b"isolation") && self.eat(b"level") {
                let Some(level) = self.isolation_level() else { return };
                isolation = Some(level);
            } else if self.is(token, b"read") {
                let Some(mode) = self.read_mode() else { return };
                read_only = Some(mode);
            } else if self.is(token, b"deferrable") {
                deferrable = Some("on");
            } else if self.is(token, b"not") && self.eat(b"deferrable") {
                deferrable = Some("off");
            } else {
                return;
            }
        }
        let settings = [
            ("default_transaction_isolation", isolation),
            ("default_transaction_read_only", read_only),
            ("default_transaction_deferrable", deferrable),
        ];
        for (name, value) in settings {
            if let Some(value) = value {
                f(Effect::Set {
                    name: name.into(),
                    value: value.into(),
                });
            }
        }
    }

    fn isolation_level(&mut self) -> Option<&'static str> {
        let token = self.next()?;
        if self.is(token, b"serializable") {
            Some("'serializable'")
        } else if self.is(token, b"repeatable") && self.eat(b"read") {
            Some("'repeatable read'")
        } else if self.is(token, b"read") && self.eat(b"committed") {
            Some("'read committed'")
        } else if self.is(token, b"read") && self.eat(b"uncommitted") {
            Some("'read uncommitted'")
        } else {
            None
        }
    }

    /// After `READ`: `ONLY` or `WRITE`, as a `default_transaction_read_only` value.
    fn read_mode(&mut self) -> Option<&'static str> {
        if self.eat(b"only") {
            Some("on")
        } else if self.eat(b"write") {
            Some("off")
        } else {
            None
        }
    }

    fn reset(&mut self, f: &mut dyn FnMut(Effect)) {
        let Some(token) = self.next() else { return };
        let name = if self.is(token, b"all") {
            return f(Effect::ResetAll);
        } else if self.is(token, b"transaction") {
            return;
        } else if self.is(token, b"time") && self.eat(b"zone") {
            "timezone".into()
        } else if self.is(token, b"session") && self.eat(b"authorization") {
            "session_authorization".into()
        } else {
            match self.var_name(token) {
                Some(name) => name,
                None => return,
            }
        };
        f(Effect::Reset { name });
    }

    /// `PREPARE name ...`, but not the two-phase commit `PREPARE TRANSACTION 'id'`.
    fn prepare(&mut self, f: &mut dyn FnMut(Effect)) {
        let Some(token) = self.next() else { return };
        let two_phase = self.is(token, b"transaction")
            && self.peek().is_some_and(|next| next.kind == Kind::Str);
        if !two_phase {
            f(Effect::Pin(PinReason::Prepare));
        }
    }

    /// `DECLARE name [options] CURSOR [WITH HOLD | WITHOUT HOLD] FOR query`.
    fn declare(&mut self, f: &mut dyn FnMut(Effect)) {
        let mut after_with = false;
        while let Some(token) = self.next() {
            if self.is(token, b"for") {
                return;
            }
            if after_with && self.is(token, b"hold") {
                return f(Effect::Pin(PinReason::HoldCursor));
            }
            after_with = self.is(token, b"with");
        }
    }

    /// `CREATE [OR REPLACE] [GLOBAL | LOCAL] {TEMP | TEMPORARY} ...` or any `pg_temp.name`.
    fn create(&mut self, f: &mut dyn FnMut(Effect)) {
        if self.eat(b"or") {
            self.eat(b"replace");
        }
        let _ = self.eat(b"global") || self.eat(b"local");
        if self.eat(b"temp") || self.eat(b"temporary") {
            return f(Effect::Pin(PinReason::TempObject));
        }
        while let Some(token) = self.next() {
            if self.is_temp_qualifier(token) {
                return f(Effect::Pin(PinReason::TempObject));
            }
        }
    }

    /// `SELECT ... INTO [TEMP] table`; `INSERT INTO` and `MERGE INTO` of a `WITH` do not count.
    fn select_into(&mut self, f: &mut dyn FnMut(Effect)) {
        let mut previous = None;
        while let Some(token) = self.next() {
            let writes = |p: Token| self.is(p, b"insert") || self.is(p, b"merge");
            if self.is(token, b"into") && !previous.is_some_and(writes) {
                if self.into_temp_table() {
                    f(Effect::Pin(PinReason::TempObject));
                }
                return;
            }
            previous = Some(token);
        }
    }

    /// After `SELECT ... INTO`: whether the new table is temporary.
    fn into_temp_table(&mut self) -> bool {
        let _ = self.eat(b"global") || self.eat(b"local");
        if self.eat(b"temp") || self.eat(b"temporary") {
            return match self.peek() {
                Some(t) if t.kind == Kind::QuotedIdent => true,
                Some(t) => {
                    t.kind == Kind::Word && !CLAUSES_AFTER_INTO.iter().any(|c| self.is(t, c))
                }
                None => false,
            };
        }
        self.eat(b"unlogged");
        self.eat(b"table");
        match self.next() {
            Some(token) => self.is_temp_qualifier(token),
            None => false,
        }
    }
}
