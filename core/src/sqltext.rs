//! Quoting and a small SQL lexer.
//!
//! Everything pgclone sends to a server is built from quoted identifiers and
//! literals. The lexer exists for two jobs where text from a catalog or a caller
//! must be understood rather than pasted: checking that a `where` filter is one
//! self-contained expression, and pointing a definition taken from
//! `pg_get_indexdef`/`pg_get_triggerdef`/`pg_get_constraintdef` at a renamed table.

/// Always-quoted identifier: safe for any name, keyword or not.
pub fn quote_ident(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    for c in name.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// `"schema"."name"`
pub fn qualified(schema: &str, name: &str) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(name))
}

/// A string literal that means the same whatever `standard_conforming_strings` says.
pub fn quote_literal(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 3);
    if value.contains('\\') {
        out.push('E');
    }
    out.push('\'');
    for c in value.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            _ => out.push(c),
        }
    }
    out.push('\'');
    out
}

#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    Word,
    QuotedIdent,
    Str,
    Number,
    Punct(char),
    Op,
    Param,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub kind: Tok,
    pub start: usize,
    pub end: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum LexError {
    Unterminated(&'static str),
}

impl std::fmt::Display for LexError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LexError::Unterminated(what) => write!(f, "unterminated {what}"),
        }
    }
}

fn is_ident_start(c: char) -> bool {
    c.is_alphabetic() || c == '_' || (c as u32) >= 0x80
}

fn is_ident_cont(c: char) -> bool {
    is_ident_start(c) || c.is_ascii_digit() || c == '$'
}

/// Split SQL into tokens, dropping whitespace and comments. Strings, quoted
/// identifiers, dollar quotes and nested block comments are recognised as the
/// server's scanner does, so nothing inside them is mistaken for structure.
pub fn tokenize(sql: &str) -> Result<Vec<Token>, LexError> {
    let b: Vec<(usize, char)> = sql.char_indices().collect();
    let n = b.len();
    let at = |i: usize| if i < n { b[i].0 } else { sql.len() };
    let ch = |i: usize| if i < n { Some(b[i].1) } else { None };
    let mut toks = Vec::new();
    let mut i = 0;
    while i < n {
        let c = b[i].1;
        let start = at(i);
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c == '-' && ch(i + 1) == Some('-') {
            // The server's scanner ends a comment at a carriage return too.
            while i < n && b[i].1 != '\n' && b[i].1 != '\r' {
                i += 1;
            }
            continue;
        }
        if c == '/' && ch(i + 1) == Some('*') {
            let mut depth = 1;
            i += 2;
            while depth > 0 {
                match (ch(i), ch(i + 1)) {
                    (None, _) => return Err(LexError::Unterminated("comment")),
                    (Some('/'), Some('*')) => {
                        depth += 1;
                        i += 2
                    }
                    (Some('*'), Some('/')) => {
                        depth -= 1;
                        i += 2
                    }
                    _ => i += 1,
                }
            }
            continue;
        }
        // E'...' / e'...' strings with backslash escapes
        if (c == 'E' || c == 'e') && ch(i + 1) == Some('\'') {
            i += 2;
            loop {
                match ch(i) {
                    None => return Err(LexError::Unterminated("string literal")),
                    Some('\\') => i += 2,
                    Some('\'') if ch(i + 1) == Some('\'') => i += 2,
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    _ => i += 1,
                }
            }
            toks.push(Token {
                kind: Tok::Str,
                start,
                end: at(i),
            });
            continue;
        }
        if c == '\'' {
            i += 1;
            loop {
                match ch(i) {
                    None => return Err(LexError::Unterminated("string literal")),
                    Some('\'') if ch(i + 1) == Some('\'') => i += 2,
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    _ => i += 1,
                }
            }
            toks.push(Token {
                kind: Tok::Str,
                start,
                end: at(i),
            });
            continue;
        }
        if c == '"' {
            i += 1;
            loop {
                match ch(i) {
                    None => return Err(LexError::Unterminated("quoted identifier")),
                    Some('"') if ch(i + 1) == Some('"') => i += 2,
                    Some('"') => {
                        i += 1;
                        break;
                    }
                    _ => i += 1,
                }
            }
            toks.push(Token {
                kind: Tok::QuotedIdent,
                start,
                end: at(i),
            });
            continue;
        }
        if c == '$' {
            // $1 parameter, or $tag$ ... $tag$ dollar quote
            if ch(i + 1).is_some_and(|d| d.is_ascii_digit()) {
                i += 1;
                while ch(i).is_some_and(|d| d.is_ascii_digit()) {
                    i += 1;
                }
                toks.push(Token {
                    kind: Tok::Param,
                    start,
                    end: at(i),
                });
                continue;
            }
            let mut j = i + 1;
            while ch(j).is_some_and(|d| d != '$' && is_ident_cont(d)) {
                j += 1;
            }
            if ch(j) == Some('$') {
                let tag = &sql[start..at(j + 1)];
                let body_start = at(j + 1);
                match sql[body_start..].find(tag) {
                    Some(off) => {
                        let end = body_start + off + tag.len();
                        toks.push(Token {
                            kind: Tok::Str,
                            start,
                            end,
                        });
                        while i < n && at(i) < end {
                            i += 1;
                        }
                        continue;
                    }
                    None => return Err(LexError::Unterminated("dollar-quoted string")),
                }
            }
            toks.push(Token {
                kind: Tok::Op,
                start,
                end: at(i + 1),
            });
            i += 1;
            continue;
        }
        if is_ident_start(c) {
            while ch(i).is_some_and(is_ident_cont) {
                i += 1;
            }
            toks.push(Token {
                kind: Tok::Word,
                start,
                end: at(i),
            });
            continue;
        }
        if c.is_ascii_digit() || (c == '.' && ch(i + 1).is_some_and(|d| d.is_ascii_digit())) {
            while ch(i).is_some_and(|d| d.is_ascii_alphanumeric() || d == '.' || d == '_') {
                i += 1;
            }
            toks.push(Token {
                kind: Tok::Number,
                start,
                end: at(i),
            });
            continue;
        }
        if matches!(c, '(' | ')' | '[' | ']' | ',' | ';' | '.') {
            toks.push(Token {
                kind: Tok::Punct(c),
                start,
                end: at(i + 1),
            });
            i += 1;
            continue;
        }
        // operator characters
        while ch(i).is_some_and(|d| "+-*/<>=~!@#%^&|`?:".contains(d)) {
            if ch(i) == Some('-') && ch(i + 1) == Some('-') {
                break;
            }
            if ch(i) == Some('/') && ch(i + 1) == Some('*') {
                break;
            }
            i += 1;
        }
        if at(i) == start {
            i += 1; // any other character stands alone
        }
        toks.push(Token {
            kind: Tok::Op,
            start,
            end: at(i),
        });
    }
    Ok(toks)
}

/// A caller's row filter must be one expression that cannot step outside the
/// parentheses pgclone wraps it in: balanced brackets that never close more
/// than they opened, no statement separator, nothing unterminated.
pub fn check_filter(filter: &str) -> Result<(), String> {
    // A NUL ends the statement text on the way to the server: what follows
    // would be cut off, and the server would see another statement.
    if filter.contains('\0') {
        return Err("a filter must not contain a NUL character".into());
    }
    let toks = tokenize(filter).map_err(|e| e.to_string())?;
    if toks.is_empty() {
        return Err("the filter is empty".into());
    }
    let mut depth: i64 = 0;
    for t in &toks {
        match t.kind {
            Tok::Punct('(') | Tok::Punct('[') => depth += 1,
            Tok::Punct(')') | Tok::Punct(']') => {
                depth -= 1;
                if depth < 0 {
                    return Err("unbalanced parentheses".into());
                }
            }
            Tok::Punct(';') => return Err("a filter must not contain \";\"".into()),
            _ => {}
        }
    }
    if depth != 0 {
        return Err("unbalanced parentheses".into());
    }
    Ok(())
}

/// In `sql`, find the first word `keyword` outside parentheses, skip any of
/// `skip` words after it, and replace the (possibly qualified) name that follows
/// with `replacement`. `None` when the shape is not found.
pub fn replace_name_after(
    sql: &str,
    keyword: &str,
    skip: &[&str],
    replacement: &str,
) -> Option<String> {
    let toks = tokenize(sql).ok()?;
    let word = |t: &Token| t.kind == Tok::Word;
    let text = |t: &Token| &sql[t.start..t.end];
    let mut depth = 0i32;
    let mut idx = None;
    for (k, t) in toks.iter().enumerate() {
        match t.kind {
            Tok::Punct('(') => depth += 1,
            Tok::Punct(')') => depth -= 1,
            _ => {}
        }
        if depth == 0 && word(t) && text(t).eq_ignore_ascii_case(keyword) {
            idx = Some(k + 1);
            break;
        }
    }
    let mut k = idx?;
    while k < toks.len()
        && word(&toks[k])
        && skip.iter().any(|s| text(&toks[k]).eq_ignore_ascii_case(s))
    {
        k += 1;
    }
    let is_name = |t: &Token| matches!(t.kind, Tok::Word | Tok::QuotedIdent);
    if k >= toks.len() || !is_name(&toks[k]) {
        return None;
    }
    let start = toks[k].start;
    let mut end = toks[k].end;
    while k + 2 < toks.len() && toks[k + 1].kind == Tok::Punct('.') && is_name(&toks[k + 2]) {
        k += 2;
        end = toks[k].end;
    }
    Some(format!("{}{}{}", &sql[..start], replacement, &sql[end..]))
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(qualified("public", "T x"), "\"public\".\"T x\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_literal("a\\b"), "E'a\\\\b'");
    }

    #[test]
    fn filters_that_are_one_expression_pass() {
        for f in [
            "id > 10",
            "note = 'Do not ship; ever'",
            "\"we)ird\" = 'x(' AND (a OR b)",
            "body = $q$ ) ; $q$",
            "arr[1] = 2 -- trailing comment",
            "x = E'it\\'s'",
        ] {
            assert_eq!(check_filter(f), Ok(()), "{f}");
        }
    }

    #[test]
    fn filters_that_escape_are_rejected() {
        for f in [
            "1=1) TO '/tmp/x' (FORMAT text",
            "true; DROP TABLE t",
            "(a",
            "a /* open",
            "'open",
            // the server ends a -- comment at a carriage return
            "true --\r) UNION SELECT 1 WHERE (true",
            "true\0) UNION SELECT 1 WHERE (true",
            "",
            "   ",
        ] {
            assert!(check_filter(f).is_err(), "{f}");
        }
    }

    #[test]
    fn retarget_index_definition() {
        let def = "CREATE UNIQUE INDEX \"a ON public.t \" ON public.t USING btree (id) WHERE (note = 'ON public.t')";
        let got = replace_name_after(def, "ON", &["ONLY"], "\"public\".\"t2\"").unwrap();
        assert_eq!(
            got,
            "CREATE UNIQUE INDEX \"a ON public.t \" ON \"public\".\"t2\" USING btree (id) WHERE (note = 'ON public.t')"
        );
        let only = "CREATE INDEX i ON ONLY \"S\".\"p t\" USING btree (a)";
        assert_eq!(
            replace_name_after(only, "ON", &["ONLY"], "x.y").unwrap(),
            "CREATE INDEX i ON ONLY x.y USING btree (a)"
        );
    }

    #[test]
    fn retarget_trigger_and_fk() {
        let trg = "CREATE TRIGGER \"on\" BEFORE UPDATE OF \"ON\" ON public.t FOR EACH ROW EXECUTE FUNCTION f()";
        assert_eq!(
            replace_name_after(trg, "ON", &[], "public.t2").unwrap(),
            "CREATE TRIGGER \"on\" BEFORE UPDATE OF \"ON\" ON public.t2 FOR EACH ROW EXECUTE FUNCTION f()"
        );
        let fk = "FOREIGN KEY (parent) REFERENCES public.t(id) ON DELETE CASCADE";
        assert_eq!(
            replace_name_after(fk, "REFERENCES", &[], "public.t2").unwrap(),
            "FOREIGN KEY (parent) REFERENCES public.t2(id) ON DELETE CASCADE"
        );
        assert_eq!(
            replace_name_after("CHECK (a > 0)", "REFERENCES", &[], "x"),
            None
        );
    }
}
