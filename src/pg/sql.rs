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
//!
//! What it cannot see: statements run inside functions and `DO` blocks (their bodies are string
//! constants); a session-level `set_config(name, value, false)` call is seen but its value is
//! not known, so it pins ([`PinReason::SetConfig`]). Client encodings whose multibyte characters
//! may contain the byte `\` (SJIS, BIG5, GBK, GB18030, UHC) can hide the end of an `E'...'`
//! constant. Names and values are decoded as UTF-8, lossily.

/// A statement effect that outlives the transaction it runs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// `SET [SESSION] name {TO|=} value`, `SET TIME ZONE v` (name "timezone"), `SET SCHEMA 'x'`
    /// (name "search_path"), `SET NAMES 'x'` (name "client_encoding"), `SET XML OPTION v`
    /// (name "xmloption"). `name` is lower-cased (unless it was a quoted identifier, then as
    /// written; dotted custom names like `myapp.x` kept whole), `value` is the exact SQL source
    /// text of the value list (e.g. `'$user', public`, `'UTC'`), which `SET name TO value`
    /// replays (except a `SET TIME ZONE INTERVAL ...` value: replay it with `SET TIME ZONE`).
    /// `SET SESSION CHARACTERISTICS AS TRANSACTION ...` is reported as the equivalent
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
    /// `DEALLOCATE [PREPARE] ALL`: every prepared statement of the session is dropped at once,
    /// whatever becomes of the transaction (prepared statements are not transactional).
    DeallocateAll,
    /// `DEALLOCATE [PREPARE] name`: one prepared statement is dropped (see
    /// [`deallocated_name`]).
    Deallocate,
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
    /// A `set_config(name, value, is_local)` call whose `is_local` is not literally true: it
    /// changes a session setting to a value the lexer cannot know.
    SetConfig,
}

/// Calls `f` for every effect in `sql` (which may hold many `;`-separated statements), in order.
///
/// Effects are what the statements do if they succeed. Within one statement, a session advisory
/// lock call is reported once, after the statement's other effects. Malformed SQL never panics;
/// the server rejects it anyway, and nothing of a simple Query runs when any of it fails to parse.
pub fn for_each_effect(sql: &[u8], mut f: impl FnMut(Effect)) {
    let mut lexer = Lexer { sql, pos: 0 };
    while lexer.pos < sql.len() {
        let mut statement = Statement::new(&mut lexer);
        statement.classify(&mut f);
        statement.finish(&mut f);
    }
}

/// Key words that start a statement which, alone, runs and commits as one implicit
/// transaction: it cannot open a transaction block or change the session.
const AUTOCOMMIT_KEYWORDS: [&[u8]; 7] = [
    b"select", b"insert", b"update", b"delete", b"with", b"values", b"table",
];

/// Whether `sql` is exactly one statement that runs in its own implicit transaction and
/// leaves no session state behind: it starts with SELECT, INSERT, UPDATE, DELETE, WITH,
/// VALUES, TABLE or `(`, and [`for_each_effect`] finds nothing in it.
///
/// After such a statement the server is idle (`ReadyForQuery` 'I') and in the session state it
/// was before, so another client's statement may follow it on the same connection. Trailing
/// blanks, comments and one `;` are allowed; anything after them is not.
pub fn is_autocommit_statement(sql: &[u8]) -> bool {
    let mut lexer = Lexer { sql, pos: 0 };
    let mut statement = Statement::new(&mut lexer);
    let plain = match statement.peek() {
        Some(first) if first.kind == Kind::Punct(b'(') => true,
        Some(first) => AUTOCOMMIT_KEYWORDS.iter().any(|k| statement.is(first, k)),
        None => false,
    };
    if !plain {
        return false;
    }
    let mut effects = false;
    statement.classify(&mut |_| effects = true);
    statement.finish(&mut |_| effects = true);
    !effects && lexer.next_token().is_none()
}

/// The statement name when `sql` is exactly one `DEALLOCATE [PREPARE] name` statement: an
/// unquoted name folded to lower case and a quoted one as written, as PostgreSQL names them.
/// `DEALLOCATE ALL` is not a name (see [`Effect::DeallocateAll`]).
pub fn deallocated_name(sql: &[u8]) -> Option<Vec<u8>> {
    let mut lexer = Lexer { sql, pos: 0 };
    let mut statement = Statement::new(&mut lexer);
    let first = statement.next()?;
    if !statement.is(first, b"deallocate") {
        return None;
    }
    let mut token = statement.next()?;
    if statement.is(token, b"prepare") {
        token = statement.next()?;
    }
    let text = statement.text(token);
    let name = match token.kind {
        Kind::Word if !text.eq_ignore_ascii_case(b"all") => text.to_ascii_lowercase(),
        Kind::QuotedIdent => {
            let inner = String::from_utf8_lossy(quoted_inner(text)).replace("\"\"", "\"");
            inner.into_bytes()
        }
        _ => return None,
    };
    // The statement ends here (a `;` ends it too), and nothing follows it.
    let ends = statement.next().is_none();
    (ends && lexer.next_token().is_none()).then_some(name)
}

/// Whether `sql` is exactly one statement that ends a transaction block and opens none:
/// `COMMIT`, `END`, `ROLLBACK` or `ABORT`, with an optional `WORK` or `TRANSACTION` and an
/// optional `AND NO CHAIN`: what PostgreSQL accepts in an aborted transaction block, answering
/// `ROLLBACK`. `ROLLBACK TO SAVEPOINT`, `... AND CHAIN` and the two-phase forms are not.
pub fn is_transaction_end(sql: &[u8]) -> bool {
    let mut lexer = Lexer { sql, pos: 0 };
    let mut statement = Statement::new(&mut lexer);
    let Some(first) = statement.next() else {
        return false;
    };
    if ![b"commit".as_slice(), b"end", b"rollback", b"abort"]
        .iter()
        .any(|k| statement.is(first, k))
    {
        return false;
    }
    let mut token = statement.next();
    if token.is_some_and(|t| statement.is(t, b"work") || statement.is(t, b"transaction")) {
        token = statement.next();
    }
    if token.is_some_and(|t| statement.is(t, b"and")) {
        let no = statement.next().is_some_and(|t| statement.is(t, b"no"));
        let chain = statement.next().is_some_and(|t| statement.is(t, b"chain"));
        if !(no && chain) {
            return false;
        }
        token = statement.next();
    }
    token.is_none() && lexer.next_token().is_none()
}

/// Whether one of the statements in `sql` ends the transaction block it runs in: `COMMIT`,
/// `END`, `ABORT`, `ROLLBACK` (not `ROLLBACK TO`) or `PREPARE TRANSACTION`. A request carrying
/// one that is cut short by a lost connection leaves no transaction behind, whatever happened.
pub fn ends_transaction(sql: &[u8]) -> bool {
    let mut lexer = Lexer { sql, pos: 0 };
    let mut ends = false;
    while lexer.pos < sql.len() {
        let mut statement = Statement::new(&mut lexer);
        if let Some(first) = statement.next() {
            let second = statement.peek();
            let followed_by = |word: &[u8]| second.is_some_and(|t| statement.is(t, word));
            ends |= [b"commit".as_slice(), b"end", b"abort"]
                .iter()
                .any(|k| statement.is(first, k))
                || (statement.is(first, b"rollback") && !followed_by(b"to"))
                || (statement.is(first, b"prepare") && followed_by(b"transaction"));
        }
        statement.finish(&mut |_| {});
    }
    ends
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

/// A token: its kind and its byte span in the source.
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
            return self.until(
                self.scan_while(start + 1, |b| b.is_ascii_digit()),
                Kind::Number,
            );
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

/// Position of the first `needle` in `haystack`; an empty `needle` is never found.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    match needle.len() {
        0 => None,
        len => haystack.windows(len).position(|w| w == needle),
    }
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

/// The tokens of one statement, up to a `;` outside parentheses (and, in a routine, outside
/// `BEGIN ATOMIC ... END`), with one token of lookahead. Every token is also checked for a
/// session advisory lock call.
struct Statement<'l, 'a> {
    lexer: &'l mut Lexer<'a>,
    peeked: Option<Option<Token>>,
    depth: usize,
    /// Set for `CREATE FUNCTION`/`PROCEDURE`, whose SQL body may hold `;` (as psql does it).
    routine: bool,
    block_depth: usize,
    done: bool,
    after_lock_name: bool,
    locks: bool,
    /// Just after the name `set_config`.
    after_set_config: bool,
    /// Inside a `set_config(` call: its parenthesis depth, argument index and the tokens of
    /// its third argument (first, count).
    set_config_call: Option<SetConfigCall>,
    session_config: bool,
}

/// Progress through the arguments of one `set_config(...)` call.
#[derive(Debug, Clone, Copy)]
struct SetConfigCall {
    depth: usize,
    arg: u8,
    third: Option<Token>,
    third_len: usize,
}

impl<'l, 'a> Statement<'l, 'a> {
    fn new(lexer: &'l mut Lexer<'a>) -> Self {
        Statement {
            lexer,
            peeked: None,
            depth: 0,
            routine: false,
            block_depth: 0,
            done: false,
            after_lock_name: false,
            locks: false,
            after_set_config: false,
            set_config_call: None,
            session_config: false,
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
            Kind::Punct(b';') if self.depth == 0 && self.block_depth == 0 => {
                self.done = true;
                return None;
            }
            Kind::Punct(b'(') => {
                self.locks |= self.after_lock_name;
                self.depth += 1;
            }
            Kind::Punct(b')') => self.depth = self.depth.saturating_sub(1),
            Kind::Word if self.routine => self.track_blocks(token),
            _ => {}
        }
        self.track_set_config(token);
        self.after_lock_name = self.is_lock_name(token);
        self.after_set_config = self.is_named(token, b"set_config");
        Some(token)
    }

    /// Follows `set_config(name, value, is_local)` calls (the `(` of one has just been counted
    /// when `token` is it): a call whose third argument is not the single word or string
    /// `true`/`t`/`on`/`yes`/`1` sets a session value.
    fn track_set_config(&mut self, token: Token) {
        if self.after_set_config && token.kind == Kind::Punct(b'(') {
            self.set_config_call = Some(SetConfigCall {
                depth: self.depth,
                arg: 0,
                third: None,
                third_len: 0,
            });
            return;
        }
        let Some(mut call) = self.set_config_call else {
            return;
        };
        match token.kind {
            Kind::Punct(b')') if self.depth < call.depth => {
                self.set_config_call = None;
                let local = call.third_len == 1
                    && call.third.is_some_and(|t| {
                        let text = match t.kind {
                            Kind::Str => self
                                .text(t)
                                .strip_prefix(b"'")
                                .and_then(|s| s.strip_suffix(b"'"))
                                .unwrap_or_default(),
                            Kind::Word => self.text(t),
                            _ => b"",
                        };
                        ["true", "t", "on", "yes", "1"]
                            .iter()
                            .any(|v| text.eq_ignore_ascii_case(v.as_bytes()))
                    });
                self.session_config |= !local;
                return;
            }
            Kind::Punct(b',') if self.depth == call.depth => call.arg = call.arg.saturating_add(1),
            _ if call.arg == 2 => {
                call.third.get_or_insert(token);
                call.third_len += 1;
            }
            _ => {}
        }
        self.set_config_call = Some(call);
    }

    /// Whether `token` is the (possibly quoted) name `name`.
    fn is_named(&self, token: Token, name: &[u8]) -> bool {
        match token.kind {
            Kind::Word => self.text(token).eq_ignore_ascii_case(name),
            Kind::QuotedIdent => quoted_inner(self.text(token)) == name,
            _ => false,
        }
    }

    /// `BEGIN ... END` and `CASE ... END` nesting in a routine body.
    fn track_blocks(&mut self, token: Token) {
        if self.is(token, b"begin") || self.is(token, b"case") {
            self.block_depth += 1;
        } else if self.is(token, b"end") {
            self.block_depth = self.block_depth.saturating_sub(1);
        }
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
        self.peek()
            .is_some_and(|token| token.kind == Kind::Punct(punct))
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
        let pg_temp = match token.kind {
            Kind::Word => prefix.eq_ignore_ascii_case(b"pg_temp"),
            _ => prefix == b"pg_temp",
        };
        pg_temp
            && match suffix.split_first() {
                None => true,
                Some((b'_', digits)) => !digits.is_empty() && digits.iter().all(u8::is_ascii_digit),
                Some(_) => false,
            }
    }

    /// Whether `token` is `pg_temp` followed by `.`, qualifying an object name.
    fn is_temp_qualifier(&mut self, token: Token) -> bool {
        self.is_temp_schema(token) && self.peek_is_punct(b'.')
    }

    /// Reports the effects announced by the statement's first key word.
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
        } else if keyword(b"deallocate") {
            self.eat(b"prepare");
            if self.eat(b"all") {
                f(Effect::DeallocateAll);
            } else if self.next().is_some() {
                f(Effect::Deallocate);
            }
        } else if keyword(b"listen") && self.next().is_some() {
            f(Effect::Pin(PinReason::Listen));
        } else if keyword(b"prepare") {
            self.prepare(f);
        } else if keyword(b"declare") {
            self.declare(f);
        } else if keyword(b"create") {
            self.create(f);
        } else if keyword(b"load") && self.next().is_some() {
            f(Effect::Pin(PinReason::Load));
        } else if keyword(b"explain") {
            self.explain(f);
        }
    }

    /// `EXPLAIN [(options)] [ANALYZE] [VERBOSE] statement`: with ANALYZE the statement runs,
    /// so one creating a temporary table pins (harmlessly, also without ANALYZE).
    fn explain(&mut self, f: &mut dyn FnMut(Effect)) {
        if self.eat_punct(b'(') {
            while self.depth > 0 && self.next().is_some() {}
        }
        let _ = self.eat(b"analyze") || self.eat(b"analyse");
        self.eat(b"verbose");
        let Some(token) = self.next() else { return };
        if self.is(token, b"create") {
            self.create(f);
        } else if self.is(token, b"select") || self.is(token, b"with") {
            self.select_into(f);
        }
    }

    /// Drains the statement and reports an advisory lock seen anywhere in it.
    fn finish(mut self, f: &mut dyn FnMut(Effect)) {
        while self.next().is_some() {}
        if self.locks {
            f(Effect::Pin(PinReason::AdvisoryLock));
        }
        if self.session_config {
            f(Effect::Pin(PinReason::SetConfig));
        }
    }

    /// `SET [SESSION | LOCAL] ...`; `SET LOCAL` lasts until the end of the transaction.
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
        let value = self
            .lexer
            .sql
            .get(first.start..last.end)
            .unwrap_or_default();
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
                let Some(level) = self.isolation_level() else {
                    return;
                };
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

    /// After `ISOLATION LEVEL`: the level as a `default_transaction_isolation` value.
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

    /// `RESET name`, `RESET ALL`, `RESET TIME ZONE`, `RESET SESSION AUTHORIZATION`.
    fn reset(&mut self, f: &mut dyn FnMut(Effect)) {
        let Some(token) = self.next() else { return };
        if self.is(token, b"all") {
            return f(Effect::ResetAll);
        }
        let name = if self.is(token, b"transaction") {
            // `RESET TRANSACTION ISOLATION LEVEL` lasts until the end of the transaction.
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
        self.routine = self.peek_is(b"function") || self.peek_is(b"procedure");
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
                if self.target_is_temporary() {
                    f(Effect::Pin(PinReason::TempObject));
                }
                return;
            }
            previous = Some(token);
        }
    }

    /// After `SELECT ... INTO`: whether the new table is temporary.
    fn target_is_temporary(&mut self) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn set(name: &str, value: &str) -> Effect {
        Effect::Set {
            name: name.into(),
            value: value.into(),
        }
    }

    fn reset(name: &str) -> Effect {
        Effect::Reset { name: name.into() }
    }

    fn pin(reason: PinReason) -> Effect {
        Effect::Pin(reason)
    }

    fn check(cases: &[(&str, &[Effect])]) {
        for (sql, expected) in cases {
            assert_eq!(effects(sql.as_bytes()), *expected, "{sql}");
        }
    }

    #[test]
    fn no_effects() {
        check(&[
            ("", &[]),
            (";", &[]),
            ("   \n\t", &[]),
            (
                "SELECT abalance FROM pgbench_accounts WHERE aid = 4242;",
                &[],
            ),
            ("UPDATE t SET a = 1 WHERE b = 2", &[]),
            ("INSERT INTO t VALUES (1)", &[]),
            ("ALTER ROLE r SET search_path = x", &[]),
            ("ALTER SYSTEM SET work_mem = '1MB'", &[]),
            (
                "CREATE FUNCTION f() RETURNS int SET search_path = x AS 'select 1' LANGUAGE sql",
                &[],
            ),
            ("EXPLAIN ANALYZE SELECT 1", &[]),
            ("EXPLAIN (ANALYZE, BUFFERS) SELECT 1 INTO t", &[]),
            (
                "EXPLAIN ANALYZE DECLARE c CURSOR WITH HOLD FOR SELECT 1",
                &[],
            ),
            ("EXPLAIN ANALYZE LISTEN c", &[]),
            ("EXPLAIN", &[]),
            ("EXPLAIN (ANALYZE", &[]),
            ("BEGIN; COMMIT", &[]),
        ]);
    }

    #[test]
    fn set_statements() {
        check(&[
            (
                "SET search_path TO \"$user\", public",
                &[set("search_path", "\"$user\", public")],
            ),
            ("set Search_Path = 'a'", &[set("search_path", "'a'")]),
            ("sEt WoRk_MeM tO '1MB'", &[set("work_mem", "'1MB'")]),
            (
                "SET SESSION work_mem = '64MB'",
                &[set("work_mem", "'64MB'")],
            ),
            ("SET LOCAL work_mem = '64MB'", &[]),
            ("SET/**/x=1", &[set("x", "1")]),
            ("SET\tx\n=\n-1 ;", &[set("x", "-1")]),
            (
                "SET search_path = a, /* mid */ b /* end */ ;",
                &[set("search_path", "a, /* mid */ b")],
            ),
            (
                "SET application_name = 'a;b'",
                &[set("application_name", "'a;b'")],
            ),
            (
                "SET application_name = E'it\\'s'",
                &[set("application_name", "E'it\\'s'")],
            ),
            (
                "SET application_name = $$x$$",
                &[set("application_name", "$$x$$")],
            ),
            ("SET myapp.user_id = 42", &[set("myapp.user_id", "42")]),
            ("SET MyApp.User_Id = 42", &[set("myapp.user_id", "42")]),
            ("SET \"MyApp\".\"Key\" = on", &[set("MyApp.Key", "on")]),
            ("SET \"a\"\"b\" = 1", &[set("a\"b", "1")]),
            ("SET x TO DEFAULT", &[reset("x")]),
            ("SET x = default", &[reset("x")]),
            ("SET TIME ZONE 'UTC'", &[set("timezone", "'UTC'")]),
            (
                "set time zone 'Europe/Paris'",
                &[set("timezone", "'Europe/Paris'")],
            ),
            ("SET TIME ZONE LOCAL", &[reset("timezone")]),
            ("SET TIME ZONE DEFAULT", &[reset("timezone")]),
            (
                "SET TIME ZONE INTERVAL '+02:00' HOUR TO MINUTE",
                &[set("timezone", "INTERVAL '+02:00' HOUR TO MINUTE")],
            ),
            ("SET SCHEMA 'app'", &[set("search_path", "'app'")]),
            ("SET NAMES 'UTF8'", &[set("client_encoding", "'UTF8'")]),
            ("SET NAMES", &[reset("client_encoding")]),
            ("SET NAMES DEFAULT", &[reset("client_encoding")]),
            ("SET XML OPTION DOCUMENT", &[set("xmloption", "DOCUMENT")]),
            (
                "SET statement_timeout = 0; SET lock_timeout TO '1s'",
                &[set("statement_timeout", "0"), set("lock_timeout", "'1s'")],
            ),
            ("BEGIN; SET x = 1; COMMIT", &[set("x", "1")]),
            ("SET x", &[]),
            ("SET x =", &[]),
            ("SET x FROM CURRENT", &[]),
        ]);
    }

    #[test]
    fn transaction_scoped_set() {
        check(&[
            ("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", &[]),
            ("SET TRANSACTION SNAPSHOT '00000003-0000001B-1'", &[]),
            ("SET CONSTRAINTS ALL DEFERRED", &[]),
            ("SET LOCAL TIME ZONE 'UTC'", &[]),
            ("SET LOCAL ROLE admin", &[]),
            ("SET LOCAL SESSION AUTHORIZATION bob", &[]),
        ]);
    }

    #[test]
    fn session_characteristics() {
        check(&[
            (
                "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY",
                &[
                    set("default_transaction_isolation", "'repeatable read'"),
                    set("default_transaction_read_only", "on"),
                ],
            ),
            (
                "set session characteristics as transaction read write not deferrable \
                 isolation level read committed",
                &[
                    set("default_transaction_isolation", "'read committed'"),
                    set("default_transaction_read_only", "off"),
                    set("default_transaction_deferrable", "off"),
                ],
            ),
            (
                "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ UNCOMMITTED DEFERRABLE",
                &[
                    set("default_transaction_isolation", "'read uncommitted'"),
                    set("default_transaction_deferrable", "on"),
                ],
            ),
            (
                "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE",
                &[set("default_transaction_isolation", "'serializable'")],
            ),
            ("SET SESSION CHARACTERISTICS AS TRANSACTION READ SIDEWAYS", &[]),
            ("SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL BOGUS", &[]),
        ]);
    }

    #[test]
    fn roles_and_authorization() {
        check(&[
            ("SET ROLE admin", &[pin(PinReason::SetRole)]),
            ("SET SESSION ROLE admin", &[pin(PinReason::SetRole)]),
            ("SET role TO admin", &[pin(PinReason::SetRole)]),
            ("SET \"role\" = 'admin'", &[pin(PinReason::SetRole)]),
            ("SET ROLE NONE", &[reset("role")]),
            ("SET ROLE 'none'", &[reset("role")]),
            ("SET role TO DEFAULT", &[reset("role")]),
            (
                "SET SESSION AUTHORIZATION bob",
                &[pin(PinReason::SessionAuthorization)],
            ),
            (
                "SET SESSION SESSION AUTHORIZATION 'bob'",
                &[pin(PinReason::SessionAuthorization)],
            ),
            (
                "SET session_authorization = bob",
                &[pin(PinReason::SessionAuthorization)],
            ),
            (
                "SET SESSION AUTHORIZATION DEFAULT",
                &[reset("session_authorization")],
            ),
            ("RESET ROLE", &[reset("role")]),
            (
                "RESET SESSION AUTHORIZATION",
                &[reset("session_authorization")],
            ),
        ]);
    }

    #[test]
    fn reset_and_discard() {
        check(&[
            ("RESET ALL", &[Effect::ResetAll]),
            ("reset all;", &[Effect::ResetAll]),
            ("reset Work_Mem", &[reset("work_mem")]),
            ("RESET myapp.\"Key\"", &[reset("myapp.Key")]),
            ("RESET TIME ZONE", &[reset("timezone")]),
            ("RESET TRANSACTION ISOLATION LEVEL", &[]),
            ("RESET", &[]),
            ("DISCARD ALL", &[Effect::DiscardAll]),
            ("discard all", &[Effect::DiscardAll]),
            ("DISCARD PLANS", &[]),
            ("DISCARD SEQUENCES", &[]),
            ("DISCARD TEMP", &[]),
            ("DISCARD TEMPORARY", &[]),
        ]);
    }

    #[test]
    fn pinning_statements() {
        use PinReason::*;
        check(&[
            ("LISTEN ch", &[pin(Listen)]),
            ("listen \"Ch\";", &[pin(Listen)]),
            ("UNLISTEN *", &[]),
            ("PREPARE q(int) AS SELECT $1", &[pin(Prepare)]),
            ("prepare q as select 1", &[pin(Prepare)]),
            ("PREPARE TRANSACTION 'gid'", &[]),
            ("DEALLOCATE q", &[Effect::Deallocate]),
            ("DEALLOCATE ALL", &[Effect::DeallocateAll]),
            ("deallocate prepare all", &[Effect::DeallocateAll]),
            ("DEALLOCATE \"all\"", &[Effect::Deallocate]),
            (
                "DECLARE c CURSOR WITH HOLD FOR SELECT 1",
                &[pin(HoldCursor)],
            ),
            (
                "DECLARE c NO SCROLL CURSOR WITH /* x */ HOLD FOR SELECT 1",
                &[pin(HoldCursor)],
            ),
            (
                "declare c binary insensitive scroll cursor with hold for select 1",
                &[pin(HoldCursor)],
            ),
            ("DECLARE c CURSOR FOR SELECT 1", &[]),
            ("DECLARE c CURSOR WITHOUT HOLD FOR SELECT 1", &[]),
            (
                "DECLARE c CURSOR FOR WITH hold AS (SELECT 1) SELECT * FROM hold",
                &[],
            ),
            ("DECLARE c CURSOR FOR SELECT 'WITH HOLD'", &[]),
            ("LOAD 'auto_explain'", &[pin(Load)]),
        ]);
    }

    #[test]
    fn temporary_objects() {
        use PinReason::TempObject;
        check(&[
            ("CREATE TEMP TABLE t (a int)", &[pin(TempObject)]),
            ("create temporary table t (a int)", &[pin(TempObject)]),
            ("CREATE GLOBAL TEMPORARY TABLE t ()", &[pin(TempObject)]),
            ("CREATE LOCAL TEMP SEQUENCE s", &[pin(TempObject)]),
            ("CREATE TEMP VIEW v AS SELECT 1", &[pin(TempObject)]),
            (
                "CREATE OR REPLACE TEMP VIEW v AS SELECT 1",
                &[pin(TempObject)],
            ),
            ("CREATE TEMP TABLE t AS SELECT 1", &[pin(TempObject)]),
            ("CREATE TABLE pg_temp.t (a int)", &[pin(TempObject)]),
            ("CREATE TABLE PG_TEMP . t (a int)", &[pin(TempObject)]),
            ("CREATE VIEW \"pg_temp\".v AS SELECT 1", &[pin(TempObject)]),
            (
                "CREATE FUNCTION pg_temp.f() RETURNS int AS 'select 1' LANGUAGE sql",
                &[pin(TempObject)],
            ),
            ("CREATE TABLE pg_temp_3.t ()", &[pin(TempObject)]),
            ("CREATE TABLE \"PG_TEMP\".t ()", &[]),
            ("CREATE TABLE pg_temporary.t ()", &[]),
            ("CREATE TABLE pg_temp_x.t ()", &[]),
            ("CREATE TABLE pg_temp ()", &[]),
            ("CREATE TABLE t (a int)", &[]),
            ("CREATE TABLE temp (a int)", &[]),
            ("CREATE UNLOGGED TABLE t ()", &[]),
            (
                "CREATE FUNCTION f() RETURNS void AS $$ CREATE TEMP TABLE x () $$ LANGUAGE sql",
                &[],
            ),
            ("SELECT * INTO TEMP t FROM x", &[pin(TempObject)]),
            ("SELECT 1 AS a INTO TEMPORARY TABLE t", &[pin(TempObject)]),
            ("SELECT 1 INTO LOCAL TEMP t", &[pin(TempObject)]),
            ("SELECT 1 INTO TEMP \"T\"", &[pin(TempObject)]),
            ("SELECT 1 INTO pg_temp.t", &[pin(TempObject)]),
            ("SELECT 1 INTO TABLE pg_temp.t", &[pin(TempObject)]),
            (
                "WITH a AS (SELECT 1) SELECT * INTO TEMP t FROM a",
                &[pin(TempObject)],
            ),
            ("(SELECT 1 INTO TEMP t)", &[pin(TempObject)]),
            ("SELECT 1 INTO t", &[]),
            ("SELECT 1 INTO UNLOGGED t", &[]),
            ("SELECT 1 INTO temp FROM x", &[]),
            ("SELECT 1 INTO temp", &[]),
            ("INSERT INTO temp VALUES (1)", &[]),
            ("WITH a AS (SELECT 1) INSERT INTO temp SELECT * FROM a", &[]),
            (
                "WITH a AS (INSERT INTO temp VALUES (1) RETURNING *) SELECT * FROM a",
                &[],
            ),
            (
                "WITH a AS (SELECT 1) MERGE INTO temp USING a ON true WHEN MATCHED THEN DO NOTHING",
                &[],
            ),
            ("SELECT 'INTO TEMP t'", &[]),
            (
                "EXPLAIN ANALYZE CREATE TEMP TABLE t AS SELECT 1",
                &[pin(TempObject)],
            ),
            (
                "explain analyse verbose create table pg_temp.t as select 1",
                &[pin(TempObject)],
            ),
            (
                "EXPLAIN (ANALYZE, COSTS off) SELECT 1 INTO TEMP t",
                &[pin(TempObject)],
            ),
            (
                "EXPLAIN (FORMAT json) WITH a AS (SELECT 1) SELECT * INTO TEMP t FROM a",
                &[pin(TempObject)],
            ),
        ]);
    }

    #[test]
    fn advisory_locks() {
        use PinReason::AdvisoryLock;
        check(&[
            ("SELECT pg_advisory_lock(1)", &[pin(AdvisoryLock)]),
            ("select PG_ADVISORY_LOCK_SHARED(1)", &[pin(AdvisoryLock)]),
            (
                "SELECT pg_catalog.pg_try_advisory_lock(1)",
                &[pin(AdvisoryLock)],
            ),
            (
                "SELECT pg_catalog.\"pg_try_advisory_lock_shared\"(1)",
                &[pin(AdvisoryLock)],
            ),
            (
                "SELECT pg_advisory_lock /* c */ (1), pg_advisory_lock(2)",
                &[pin(AdvisoryLock)],
            ),
            ("SELECT * FROM pg_advisory_lock(1, 2)", &[pin(AdvisoryLock)]),
            (
                "UPDATE t SET a = 1 WHERE pg_try_advisory_lock(id)",
                &[pin(AdvisoryLock)],
            ),
            (
                "EXPLAIN ANALYZE SELECT pg_advisory_lock(1)",
                &[pin(AdvisoryLock)],
            ),
            ("SELECT pg_advisory_xact_lock(1)", &[]),
            ("SELECT pg_advisory_xact_lock_shared(1)", &[]),
            ("SELECT pg_try_advisory_xact_lock(1)", &[]),
            ("SELECT pg_advisory_unlock(1)", &[]),
            ("SELECT pg_advisory_unlock_all()", &[]),
            ("SELECT pg_advisory_lock FROM t", &[]),
            ("SELECT \"PG_ADVISORY_LOCK\"(1)", &[]),
            ("SELECT pg_advisory_locks(1)", &[]),
            (
                "SELECT pg_advisory_lock(1); LISTEN c",
                &[pin(AdvisoryLock), pin(PinReason::Listen)],
            ),
            (
                "CREATE TEMP TABLE t AS SELECT pg_advisory_lock(1)",
                &[pin(PinReason::TempObject), pin(AdvisoryLock)],
            ),
            (
                "DECLARE c CURSOR WITH HOLD FOR SELECT pg_advisory_lock(1)",
                &[pin(PinReason::HoldCursor), pin(AdvisoryLock)],
            ),
        ]);
    }

    #[test]
    fn lexical_traps() {
        let listen = &[pin(PinReason::Listen)][..];
        check(&[
            ("SELECT 'LISTEN x'", &[]),
            ("SELECT $$ pg_advisory_lock(1) $$", &[]),
            ("/* SET x=1 */ SELECT 1", &[]),
            ("-- SET x=1\nSELECT 1", &[]),
            ("SELECT 'a;SET x=1'", &[]),
            ("SELECT 'it''s'; LISTEN c", listen),
            ("SELECT 'it'';LISTEN c'", &[]),
            ("SELECT '\\'; LISTEN c", listen),
            ("SELECT E'\\'; LISTEN c'", &[]),
            ("SELECT e'\\\\'; LISTEN c", listen),
            ("SELECT E'a''; LISTEN c'", &[]),
            ("SELECT E'x'\n'\\'; LISTEN c'", &[]),
            ("SELECT E'x' -- c\n  'y\\'; LISTEN c'", &[]),
            ("SELECT E'x' '\\'; LISTEN c", listen),
            ("SELECT 'x'\n'\\'; LISTEN c", listen),
            ("SELECT U&'d\\0061t'; LISTEN c", listen),
            ("SELECT U&\"a;b\"; LISTEN c", listen),
            ("SELECT u&'\\'; LISTEN c", listen),
            ("SELECT B'1010', X'ff', N'x;y'; LISTEN c", listen),
            ("SELECT b'1;0'", &[]),
            ("SELECT 'a' FROM t WHERE name = 'SET x = 1'", &[]),
            ("/* /* nested */ LISTEN c */ SELECT 1", &[]),
            ("/* /* nested */ */ LISTEN c", listen),
            ("/*/ LISTEN c */ SELECT 1", &[]),
            ("SELECT 1 */ LISTEN c", &[]),
            ("SELECT 2 /**/; LISTEN c", listen),
            ("SELECT 1 -- ; LISTEN c\n; LISTEN c", listen),
            ("SELECT 1 --; LISTEN c", &[]),
            ("SELECT 1 - - 1; LISTEN c", listen),
            (
                "SELECT $tag$ ; LISTEN c $notag$ $TAG$ $tag$; LISTEN c",
                listen,
            ),
            ("SELECT $a$ $b$ ; $a$; LISTEN c", listen),
            ("SELECT $_1$ ; $_1$; LISTEN c", listen),
            ("SELECT $$;LISTEN c", &[]),
            ("SELECT $1; LISTEN c", listen),
            ("SELECT $12$; LISTEN c", listen),
            ("SELECT a$$b; LISTEN c", listen),
            ("SELECT a$b$ ; LISTEN c", listen),
            ("SELECT \"SET\"; SELECT \"a;b\"; LISTEN c", listen),
            ("SELECT \"a\"\";LISTEN c\"", &[]),
            ("\"LISTEN\" c", &[]),
            ("SELECT 1;;; LISTEN c", listen),
            ("SELECT 1.5e3;LISTEN c", listen),
            (
                "CREATE RULE r AS ON INSERT TO t DO ALSO (NOTIFY c; LISTEN c)",
                &[],
            ),
            ("SELECT (1)); LISTEN c", listen),
            (
                "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; LISTEN x; END; LISTEN c",
                listen,
            ),
            (
                "create or replace procedure p() language sql begin atomic \
                 insert into t values (case when true then 1 end); listen x; end; listen c",
                listen,
            ),
            ("CREATE FUNCTION f() RETURNS int LANGUAGE sql RETURN 1; LISTEN c", listen),
            ("CREATE TABLE t (a int); END; LISTEN c", listen),
            ("SELECT CASE WHEN true THEN 1 END; BEGIN; LISTEN c", listen),
            ("LiStEn c", listen),
            ("\u{feff}LISTEN c", &[]),
            ("SELECT 'é'; LISTEN ç", listen),
        ]);
    }

    #[test]
    fn unterminated_input() {
        check(&[
            ("SELECT 'unterminated; LISTEN c", &[]),
            ("SELECT E'unterminated\\", &[]),
            ("SELECT \"unterminated; LISTEN c", &[]),
            ("SELECT $q$ unterminated; LISTEN c", &[]),
            ("SELECT 1 /* unterminated /* */ ; LISTEN c", &[]),
            ("SET x = 1; SELECT /* oops", &[set("x", "1")]),
            ("LISTEN c; SELECT 'oops", &[pin(PinReason::Listen)]),
            ("SET \"x", &[]),
            ("SET x.", &[]),
            ("SET", &[]),
            ("SET SESSION", &[]),
            ("PREPARE", &[]),
            ("LISTEN", &[]),
            ("LOAD", &[]),
            ("SELECT 1 INTO", &[]),
            ("CREATE TEMP", &[pin(PinReason::TempObject)]),
            ("$", &[]),
            ("E", &[]),
            ("U&", &[]),
        ]);
    }

    /// Text that may contain anything a classifier could trip on.
    fn nasty_text() -> impl Strategy<Value = String> {
        let fragments = prop::sample::select(vec![
            "SET x = 1",
            "LISTEN c",
            "RESET ALL",
            "DISCARD ALL",
            "pg_advisory_lock(1)",
            "CREATE TEMP TABLE t()",
            "INTO TEMP t",
            "PREPARE p AS SELECT 1",
            ";",
            "'",
            "''",
            "\"",
            "$",
            "$$",
            "$q$",
            "$1",
            "/*",
            "*/",
            "--",
            "\n",
            "\r",
            "\\",
            "E'",
            "U&'",
            " ",
            "(",
            ")",
            "a",
            "é",
            "\u{0}",
        ]);
        prop::collection::vec(fragments, 0..24).prop_map(|parts| parts.concat())
    }

    /// Ways to make `text` inert: string constants, a quoted identifier, comments.
    fn wrap(text: &str, how: usize) -> Option<String> {
        if how == 3 && text.contains("$q$") {
            return None;
        }
        Some(match how {
            0 => format!("'{}'", text.replace('\'', "''")),
            1 => format!("E'{}'", text.replace('\\', "\\\\").replace('\'', "\\'")),
            2 => format!("\"{}\"", text.replace('"', "\"\"")),
            3 => format!("$q$ {text} $q$"),
            4 => format!("--{}\n", text.replace(['\n', '\r'], " ")),
            5 => format!("/* {} */", text.replace('*', " * ")),
            6 => format!("/* /* */ {} */", text.replace('*', " * ")),
            _ => format!("U&'{}'", text.replace('\'', "''")),
        })
    }

    /// Randomly upper-cases the ASCII letters of `text`.
    fn mixed_case(text: &str, mask: u64) -> String {
        text.chars()
            .enumerate()
            .map(|(i, c)| match (mask >> (i % 64)) & 1 {
                1 => c.to_ascii_uppercase(),
                _ => c,
            })
            .collect()
    }

    fn separator() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            " ",
            "\n",
            "\t",
            "  \r\n ",
            "/* c */",
            "/* /* n */ ; */",
            "-- ; c\n",
            " /**/ ",
        ])
    }

    fn value() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "1",
            "-1",
            "1.5",
            "on",
            "public",
            "\"$user\"",
            "'UTC'",
            "'a;b'",
            "'it''s'",
            "E'x\\'y'",
            "$$v;v$$",
            "$t$a$t$",
            "U&'d\\0061t'",
        ])
    }

    proptest! {
        #[test]
        fn never_panics_on_bytes(sql in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = effects(&sql);
        }

        #[test]
        fn never_panics_on_nasty_text(sql in nasty_text()) {
            let _ = effects(sql.as_bytes());
        }

        #[test]
        fn inert_text_has_no_effect(text in nasty_text(), how in 0usize..8) {
            let Some(wrapped) = wrap(&text, how) else { return Ok(()) };
            let sql = format!("SELECT {wrapped} AS x; SET y = 2");
            prop_assert_eq!(effects(sql.as_bytes()), vec![set("y", "2")], "{}", sql);
        }

        #[test]
        fn generated_set_is_reported(
            name in "[a-z_][a-z0-9_]{0,8}(\\.[a-z_][a-z0-9_]{0,8})?",
            values in prop::collection::vec((value(), separator(), separator()), 1..4),
            seps in prop::collection::vec(separator(), 4),
            equals in any::<bool>(),
            session in any::<bool>(),
            mask in any::<u64>(),
        ) {
            let special = ["local", "session", "transaction", "time", "schema", "names", "role",
                "xml", "constraints", "session_authorization", "timezone"];
            prop_assume!(!special.contains(&name.as_str()));
            let value = values
                .iter()
                .enumerate()
                .map(|(i, (v, before, after))| match i {
                    0 => v.to_string(),
                    _ => format!("{before},{after}{v}"),
                })
                .collect::<String>();
            let keyword = match session {
                true => format!("set{}session", seps[0]),
                false => "set".to_string(),
            };
            let assign = if equals { "=" } else { "to" };
            let sql = format!(
                "{}{}{}{}{}{}{};",
                mixed_case(&keyword, mask),
                seps[1],
                mixed_case(&name, mask.rotate_left(17)),
                seps[2],
                mixed_case(assign, mask.rotate_left(31)),
                seps[3],
                value,
            );
            prop_assert_eq!(effects(sql.as_bytes()), vec![set(&name, &value)], "{}", sql);
        }
    }

    #[test]
    fn autocommit_statements_are_single_and_stateless() {
        for sql in [
            "SELECT abalance FROM pgbench_accounts WHERE aid = 1;",
            "select 1",
            "  /* c */ INSERT INTO t VALUES ('BEGIN; x') -- trailing\n",
            "UPDATE t SET a = $$;$$ WHERE b = $1",
            "WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x",
            "(SELECT 1) UNION (SELECT 2);",
            "VALUES (1), (2)",
            "TABLE t",
        ] {
            assert!(is_autocommit_statement(sql.as_bytes()), "{sql}");
        }
    }

    #[test]
    fn requests_that_end_their_transaction_are_recognised() {
        for sql in [
            "COMMIT",
            "INSERT INTO t VALUES (1); COMMIT",
            "end",
            "ROLLBACK",
            "abort work",
            "PREPARE TRANSACTION 'x'",
        ] {
            assert!(ends_transaction(sql.as_bytes()), "{sql}");
        }
        for sql in [
            "",
            "SELECT 'commit'",
            "ROLLBACK TO SAVEPOINT a",
            "PREPARE s AS SELECT 1",
            "BEGIN",
            "SELECT 1 -- commit",
        ] {
            assert!(!ends_transaction(sql.as_bytes()), "{sql}");
        }
    }

    #[test]
    fn transaction_ends_are_recognised_as_postgres_accepts_them_when_aborted() {
        for sql in [
            "COMMIT",
            "commit;",
            "END",
            "ROLLBACK",
            " rollback work ; ",
            "ABORT TRANSACTION",
            "COMMIT AND NO CHAIN",
            "/* c */ Rollback -- bye\n",
        ] {
            assert!(is_transaction_end(sql.as_bytes()), "{sql}");
        }
        for sql in [
            "",
            "BEGIN",
            "ROLLBACK TO SAVEPOINT a",
            "ROLLBACK TO a",
            "COMMIT AND CHAIN",
            "ROLLBACK PREPARED 'x'",
            "COMMIT PREPARED 'x'",
            "COMMIT; SELECT 1",
            "SELECT 1; COMMIT",
            "\"commit\"",
            "'rollback'",
        ] {
            assert!(!is_transaction_end(sql.as_bytes()), "{sql}");
        }
    }

    #[test]
    fn statements_that_may_leave_state_are_not_autocommit() {
        for sql in [
            "",
            ";",
            "BEGIN",
            "begin; select 1",
            "SELECT 1; SELECT 2",
            "SELECT 1;;",
            "SELECT pg_advisory_lock(1)",
            "SELECT * INTO TEMP t FROM u",
            "SET search_path = x",
            "START TRANSACTION",
            "COMMIT",
            "DECLARE c CURSOR WITH HOLD FOR SELECT 1",
            "LISTEN x",
            "COPY t FROM STDIN",
            "CALL p()",
            "DO $$BEGIN END$$",
            "EXPLAIN ANALYZE SELECT 1",
            "PREPARE p AS SELECT 1",
            "\"select\" 1",
        ] {
            assert!(!is_autocommit_statement(sql.as_bytes()), "{sql}");
        }
    }

    #[test]
    fn session_set_config_calls_pin() {
        let pin = vec![Effect::Pin(PinReason::SetConfig)];
        for sql in [
            "SELECT set_config('search_path', 'x', false)",
            "select pg_catalog.set_config('a', 'b', is_local)",
            "SELECT \"set_config\"('a', 'b', 'off')",
            "SELECT set_config('a', 'b', true), set_config('c', 'd', false)",
            "SELECT set_config('a', 'b', NOT true)",
        ] {
            assert_eq!(effects(sql.as_bytes()), pin, "{sql}");
        }
        for sql in [
            "SELECT set_config('a.b', 'x', true)",
            "SELECT set_config('x', f(1, 2), 'on')",
            "SELECT set_config('x', 'y', TRUE); SELECT 1",
            "SELECT 'set_config(1, 2, false)'",
            "SELECT set_config",
        ] {
            assert!(effects(sql.as_bytes()).is_empty(), "{sql}");
        }
        assert!(!is_autocommit_statement(
            b"SELECT set_config('search_path', 'x', false)"
        ));
    }
    #[test]
    fn deallocate_names_fold_as_postgres_does() {
        let name = |sql: &str| deallocated_name(sql.as_bytes());
        assert_eq!(name("DEALLOCATE s1"), Some(b"s1".to_vec()));
        assert_eq!(name("deallocate prepare S_1;"), Some(b"s_1".to_vec()));
        assert_eq!(name(r#"DEALLOCATE "S_1" ; "#), Some(b"S_1".to_vec()));
        assert_eq!(name(r#"DEALLOCATE "a""b""#), Some(b"a\"b".to_vec()));
        assert_eq!(name("/* c */ DEALLOCATE x -- done"), Some(b"x".to_vec()));
        assert_eq!(name("DEALLOCATE ALL"), None);
        assert_eq!(name("DEALLOCATE PREPARE all"), None);
        assert_eq!(name("DEALLOCATE x; SELECT 1"), None);
        assert_eq!(name("DEALLOCATE x y"), None);
        assert_eq!(name("DEALLOCATE 'x'"), None);
        assert_eq!(name("DEALLOCATE"), None);
        assert_eq!(name("SELECT 1"), None);
    }
}
