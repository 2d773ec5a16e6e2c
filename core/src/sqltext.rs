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
    let mut lx = Lexer {
        sql,
        b: sql.char_indices().collect(),
        i: 0,
    };
    let mut toks = Vec::new();
    while let Some(t) = lx.next_token()? {
        toks.push(t);
    }
    Ok(toks)
}

/// The scanner's position in the text, by character.
struct Lexer<'s> {
    sql: &'s str,
    b: Vec<(usize, char)>,
    i: usize,
}

impl Lexer<'_> {
    /// The byte offset of character `i` (the text's end past the last).
    fn at(&self, i: usize) -> usize {
        self.b.get(i).map_or(self.sql.len(), |c| c.0)
    }

    fn ch(&self, i: usize) -> Option<char> {
        self.b.get(i).map(|c| c.1)
    }

    fn token(&self, kind: Tok, start: usize) -> Option<Token> {
        Some(Token {
            kind,
            start,
            end: self.at(self.i),
        })
    }

    /// Past whitespace and comments; false at the end of the text.
    fn skip_blanks(&mut self) -> Result<bool, LexError> {
        loop {
            match (self.ch(self.i), self.ch(self.i + 1)) {
                (None, _) => return Ok(false),
                (Some(c), _) if c.is_whitespace() => self.i += 1,
                (Some('-'), Some('-')) => {
                    // The server's scanner ends a comment at a carriage return too.
                    while self.ch(self.i).is_some_and(|c| c != '\n' && c != '\r') {
                        self.i += 1;
                    }
                }
                (Some('/'), Some('*')) => self.block_comment()?,
                _ => return Ok(true),
            }
        }
    }

    /// Past a `/* ... */` comment, which may nest.
    fn block_comment(&mut self) -> Result<(), LexError> {
        let mut depth = 1;
        self.i += 2;
        while depth > 0 {
            match (self.ch(self.i), self.ch(self.i + 1)) {
                (None, _) => return Err(LexError::Unterminated("comment")),
                (Some('/'), Some('*')) => {
                    depth += 1;
                    self.i += 2
                }
                (Some('*'), Some('/')) => {
                    depth -= 1;
                    self.i += 2
                }
                _ => self.i += 1,
            }
        }
        Ok(())
    }

    /// Past the rest of a text quoted by `q` (the opening one is behind):
    /// a doubled `q` stands for itself, and with `backslash` a backslash
    /// escapes the next character.
    fn quoted(&mut self, q: char, backslash: bool, what: &'static str) -> Result<(), LexError> {
        loop {
            match self.ch(self.i) {
                None => return Err(LexError::Unterminated(what)),
                Some('\\') if backslash => self.i += 2,
                Some(c) if c == q && self.ch(self.i + 1) == Some(q) => self.i += 2,
                Some(c) if c == q => {
                    self.i += 1;
                    return Ok(());
                }
                _ => self.i += 1,
            }
        }
    }

    /// `$1` (a parameter), `$tag$ ... $tag$` (a string), or a lone `$`.
    fn dollar(&mut self, start: usize) -> Result<Option<Token>, LexError> {
        let i = self.i;
        if self.ch(i + 1).is_some_and(|d| d.is_ascii_digit()) {
            self.i += 1;
            while self.ch(self.i).is_some_and(|d| d.is_ascii_digit()) {
                self.i += 1;
            }
            return Ok(self.token(Tok::Param, start));
        }
        let mut j = i + 1;
        while self.ch(j).is_some_and(|d| d != '$' && is_ident_cont(d)) {
            j += 1;
        }
        if self.ch(j) == Some('$') {
            let tag = &self.sql[start..self.at(j + 1)];
            let body_start = self.at(j + 1);
            let Some(off) = self.sql[body_start..].find(tag) else {
                return Err(LexError::Unterminated("dollar-quoted string"));
            };
            let end = body_start + off + tag.len();
            while self.i < self.b.len() && self.at(self.i) < end {
                self.i += 1;
            }
            return Ok(Some(Token {
                kind: Tok::Str,
                start,
                end,
            }));
        }
        self.i += 1;
        Ok(self.token(Tok::Op, start))
    }

    /// A run of operator characters (up to a comment's start), or any other
    /// character alone.
    fn operator(&mut self, start: usize) -> Option<Token> {
        while let Some(d) = self.ch(self.i) {
            let next = self.ch(self.i + 1);
            if !"+-*/<>=~!@#%^&|`?:".contains(d)
                || (d == '-' && next == Some('-'))
                || (d == '/' && next == Some('*'))
            {
                break;
            }
            self.i += 1;
        }
        if self.at(self.i) == start {
            self.i += 1;
        }
        self.token(Tok::Op, start)
    }

    fn next_token(&mut self) -> Result<Option<Token>, LexError> {
        if !self.skip_blanks()? {
            return Ok(None);
        }
        let i = self.i;
        let start = self.at(i);
        let (c, next) = (self.b[i].1, self.ch(i + 1));
        Ok(match c {
            // E'...' / e'...' strings with backslash escapes
            'E' | 'e' if next == Some('\'') => {
                self.i += 2;
                self.quoted('\'', true, "string literal")?;
                self.token(Tok::Str, start)
            }
            '\'' => {
                self.i += 1;
                self.quoted('\'', false, "string literal")?;
                self.token(Tok::Str, start)
            }
            '"' => {
                self.i += 1;
                self.quoted('"', false, "quoted identifier")?;
                self.token(Tok::QuotedIdent, start)
            }
            '$' => self.dollar(start)?,
            c if is_ident_start(c) => {
                while self.ch(self.i).is_some_and(is_ident_cont) {
                    self.i += 1;
                }
                self.token(Tok::Word, start)
            }
            c if c.is_ascii_digit() || (c == '.' && next.is_some_and(|d| d.is_ascii_digit())) => {
                while self
                    .ch(self.i)
                    .is_some_and(|d| d.is_ascii_alphanumeric() || d == '.' || d == '_')
                {
                    self.i += 1;
                }
                self.token(Tok::Number, start)
            }
            '(' | ')' | '[' | ']' | ',' | ';' | '.' => {
                self.i += 1;
                self.token(Tok::Punct(c), start)
            }
            _ => self.operator(start),
        })
    }
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
