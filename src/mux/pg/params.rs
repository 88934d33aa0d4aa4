//! Session parameters a client expects, tracked as differences from the pool's baseline (the
//! values an upstream reports right after login), and the SET/RESET statements that move an
//! upstream from its state to a client's.

/// A parameter value as it must be replayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    /// A plain value (from the startup packet or a ParameterStatus), replayed as a quoted literal.
    Literal(Box<str>),
    /// The SQL source of a SET statement's value list, replayed verbatim.
    Sql(Box<str>),
}

/// Parameters that differ from the baseline, keyed by lower-case name. Small: most sessions
/// differ in a handful of parameters at most.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ParamDiff(Vec<(Box<str>, Value)>);

impl ParamDiff {
    /// The value recorded for `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| &**k == name).map(|(_, v)| v)
    }

    /// Records `value` for `name` (lower-cased by the caller).
    pub(crate) fn set(&mut self, name: &str, value: Value) {
        match self.0.iter_mut().find(|(k, _)| &**k == name) {
            Some(slot) => slot.1 = value,
            None => self.0.push((name.into(), value)),
        }
    }

    /// Forgets `name`: it holds the baseline value again.
    pub(crate) fn reset(&mut self, name: &str) {
        self.0.retain(|(k, _)| &**k != name);
    }

    /// Forgets every parameter for which `keep` returns false.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&str, &Value) -> bool) {
        self.0.retain(|(k, v)| keep(k, v));
    }

    /// Forgets everything.
    pub(crate) fn clear(&mut self) {
        self.0.clear();
        self.0.shrink_to_fit();
    }

    /// Entries in insertion order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.0.iter().map(|(k, v)| (&**k, v))
    }
}

/// Whether `name` can be written unquoted in a SET statement.
pub(crate) fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
        && !name.starts_with(|c: char| c.is_ascii_digit())
}

/// Appends the statements that turn `current` into `desired` to `sql`; returns how many.
pub(crate) fn sync_statements(desired: &ParamDiff, current: &ParamDiff, sql: &mut String) -> usize {
    let mut count = 0;
    for (name, value) in desired.iter() {
        if current.get(name) != Some(value) {
            push_set(sql, name, value);
            count += 1;
        }
    }
    for (name, _) in current.iter() {
        if desired.get(name).is_none() {
            sql.push_str("RESET ");
            push_name(sql, name);
            sql.push(';');
            count += 1;
        }
    }
    count
}

/// Appends the statement that gives `name` its `value`: plain values go through `set_config`,
/// which takes them exactly as a startup packet does (list values stay lists).
fn push_set(sql: &mut String, name: &str, value: &Value) {
    match value {
        Value::Sql(text) => {
            sql.push_str("SET ");
            push_name(sql, name);
            sql.push_str(" TO ");
            sql.push_str(text);
        }
        Value::Literal(text) => {
            sql.push_str("SELECT pg_catalog.set_config(");
            push_literal(sql, name);
            sql.push(',');
            push_literal(sql, text);
            sql.push_str(",false)");
        }
    }
    sql.push(';');
}

/// Appends `name` as an identifier, quoted unless it is plain.
fn push_name(sql: &mut String, name: &str) {
    if is_plain_name(name) {
        sql.push_str(name);
        return;
    }
    sql.push('"');
    for c in name.chars() {
        if c == '"' {
            sql.push('"');
        }
        sql.push(c);
    }
    sql.push('"');
}

/// Appends `text` as a standard-conforming string literal.
fn push_literal(sql: &mut String, text: &str) {
    sql.push('\'');
    for c in text.chars() {
        if c == '\'' {
            sql.push('\'');
        }
        sql.push(c);
    }
    sql.push('\'');
}

/// Parses the `options` startup parameter (`-c name=value`, `--name=value`, backslash escapes
/// spaces) into name/value pairs; other switches are ignored.
pub(crate) fn parse_options(options: &str) -> Vec<(String, String)> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut chars = options.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => word.extend(chars.next()),
            c if c.is_ascii_whitespace() => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    let mut out = Vec::new();
    let mut iter = words.into_iter();
    while let Some(w) = iter.next() {
        let assignment = if w == "-c" {
            iter.next()
        } else if let Some(rest) = w.strip_prefix("-c") {
            Some(rest.to_string())
        } else {
            w.strip_prefix("--").map(str::to_string)
        };
        if let Some((k, v)) = assignment.as_deref().and_then(|a| a.split_once('=')) {
            out.push((k.replace('-', "_").to_ascii_lowercase(), v.to_string()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(s: &str) -> Value {
        Value::Literal(s.into())
    }

    #[test]
    fn sync_sets_what_differs_and_resets_what_the_client_lacks() {
        let mut desired = ParamDiff::default();
        desired.set("application_name", lit("it's"));
        desired.set("search_path", Value::Sql("\"$user\", public".into()));
        desired.set("my\"var", Value::Sql("1".into()));
        let mut current = ParamDiff::default();
        current.set("search_path", Value::Sql("\"$user\", public".into()));
        current.set("timezone", lit("UTC"));
        let mut sql = String::new();
        assert_eq!(sync_statements(&desired, &current, &mut sql), 3);
        assert_eq!(
            sql,
            "SELECT pg_catalog.set_config('application_name','it''s',false);\
             SET \"my\"\"var\" TO 1;RESET timezone;"
        );
    }

    #[test]
    fn equal_states_need_nothing() {
        let mut a = ParamDiff::default();
        a.set("x", lit("1"));
        let mut sql = String::new();
        assert_eq!(sync_statements(&a, &a.clone(), &mut sql), 0);
        assert!(sql.is_empty());
    }

    #[test]
    fn options_parse_like_the_server() {
        assert_eq!(
            parse_options(
                "-c search_path=a\\ b --statement-timeout=5s -csynchronous_commit=off -X"
            ),
            vec![
                ("search_path".into(), "a b".into()),
                ("statement_timeout".into(), "5s".into()),
                ("synchronous_commit".into(), "off".into()),
            ]
        );
    }

    #[test]
    fn plain_names() {
        assert!(is_plain_name("myapp.user_id"));
        assert!(!is_plain_name("a;b"));
        assert!(!is_plain_name("1a"));
        assert!(!is_plain_name(""));
    }
}
