//! Small pieces of PostgreSQL's SQL syntax that bica-compare and bica-dbprops need to read
//! what `pg_dump` and `pg_restore -f -` write: identifiers (bare or double-quoted), string
//! literals, and statements split at the semicolons that end them.
//!
//! This is not a SQL parser: pg_dump's output is regular (one statement per TOC entry body,
//! identifiers quoted by `fmtId`, strings as `'...'` or `E'...'`), and these functions read
//! exactly that much. Anything they do not understand is an error for the caller to report,
//! never a guess.

/// An identifier read from the start of a string: its value (quotes removed, `""` undone)
/// and how many bytes of the input it took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ident {
    pub value: String,
    pub len: usize,
}

/// Reads one identifier at the start of `s`: `"..."` with `""` for a quote, or a bare word of
/// letters, digits, `_` and `$` (folded to lower case, as the server does).
pub fn ident_at(s: &str) -> Option<Ident> {
    if let Some(rest) = s.strip_prefix('"') {
        let mut value = String::new();
        let mut chars = rest.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if c == '"' {
                if matches!(chars.peek(), Some((_, '"'))) {
                    value.push('"');
                    chars.next();
                } else {
                    return Some(Ident {
                        value,
                        len: 1 + i + 1,
                    });
                }
            } else {
                value.push(c);
            }
        }
        return None;
    }
    let mut len = 0;
    for (i, c) in s.char_indices() {
        if !(c.is_alphanumeric() || c == '_' || (c == '$' && i > 0)) {
            break;
        }
        len = i + c.len_utf8();
    }
    if len == 0 || s.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    Some(Ident {
        value: s[..len].to_lowercase(),
        len,
    })
}

/// `name` as a double-quoted identifier (always quoted, so no keyword list is needed).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Reads a string literal at the start of `s` (`'...'` with `''`, or `E'...'` with backslash
/// escapes); returns its raw text (as written) and its length in bytes.
pub fn string_at(s: &str) -> Option<usize> {
    let (escape, body) = match s.strip_prefix(['E', 'e']) {
        Some(rest) if rest.starts_with('\'') => (true, &rest[1..]),
        _ => (false, s.strip_prefix('\'')?),
    };
    let start = s.len() - body.len();
    let bytes = body.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if escape => i += 2,
            b'\'' if bytes.get(i + 1) == Some(&b'\'') => i += 2,
            b'\'' => return Some(start + i + 1),
            _ => i += 1,
        }
    }
    None
}

/// Splits SQL text into statements (each without its final `;`, trimmed), skipping `--`
/// comments and psql meta-command lines (`\connect`, `\restrict`, ...). Fails on an
/// unterminated string or identifier, or text after the last `;`.
pub fn statements(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut rest = text;
    let mut at_line_start = true;
    while let Some(c) = rest.chars().next() {
        if at_line_start && current.trim().is_empty() && c == '\\' {
            // A psql meta-command takes the whole line.
            rest = rest.split_once('\n').map(|(_, r)| r).unwrap_or("");
            continue;
        }
        at_line_start = c == '\n';
        if rest.starts_with("--") {
            rest = rest.split_once('\n').map(|(_, r)| r).unwrap_or("");
            current.push('\n');
            at_line_start = true;
            continue;
        }
        let take = if c == '\'' || ((c == 'E' || c == 'e') && rest[1..].starts_with('\'')) {
            string_at(rest).ok_or("a string literal does not end")?
        } else if c == '"' {
            ident_at(rest)
                .ok_or("a quoted identifier does not end")?
                .len
        } else if c == '$' {
            dollar_quote_len(rest).unwrap_or(1)
        } else if c == ';' {
            let stmt = current.trim().to_string();
            if !stmt.is_empty() {
                out.push(stmt);
            }
            current.clear();
            rest = &rest[1..];
            continue;
        } else {
            c.len_utf8()
        };
        current.push_str(&rest[..take]);
        rest = &rest[take..];
    }
    if !current.trim().is_empty() {
        return Err(format!(
            "text after the last statement: {:?}",
            current.trim().chars().take(60).collect::<String>()
        ));
    }
    Ok(out)
}

/// The length of a dollar-quoted string (`$tag$ ... $tag$`) at the start of `s`, if it is one.
fn dollar_quote_len(s: &str) -> Option<usize> {
    let tag_end = s[1..].find('$')? + 2;
    let tag = &s[..tag_end];
    if !tag[1..tag_end - 1]
        .chars()
        .all(|c| c.is_alphanumeric() || c == '_')
    {
        return None;
    }
    let close = s[tag_end..].find(tag)?;
    Some(tag_end + close + tag.len())
}

/// Splits `s` at the first top-level occurrence of `word` (a keyword, case-insensitive,
/// between word boundaries, outside strings and quoted identifiers); returns the byte offset
/// of the word.
pub fn find_keyword(s: &str, word: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < s.len() {
        let rest = &s[i..];
        let c = rest.chars().next()?;
        if c == '\'' {
            i += string_at(rest)?;
            continue;
        }
        if c == '"' {
            i += ident_at(rest)?.len;
            continue;
        }
        let candidate = rest.as_bytes();
        if candidate.len() >= word.len()
            && candidate[..word.len()].eq_ignore_ascii_case(word.as_bytes())
            && (i == 0 || !is_word_byte(bytes[i - 1]))
            && !candidate.get(word.len()).copied().is_some_and(is_word_byte)
        {
            return Some(i);
        }
        i += c.len_utf8();
    }
    None
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

/// Rewrites `pg_dumpall --globals-only` SQL so that the roles and tablespaces that exist already
/// on the target server (`roles`, `tablespaces`: their names) are left alone: their `CREATE`
/// and `ALTER` lines become comments, so restoring globals never changes an existing role, not
/// even the password of the user doing the restore. Every other line is kept as it is.
pub fn keep_existing_globals(
    sql: &str,
    roles: &std::collections::BTreeSet<String>,
    tablespaces: &std::collections::BTreeSet<String>,
) -> String {
    let mut out = String::with_capacity(sql.len());
    for line in sql.split_inclusive('\n') {
        let named = |kind: &str| {
            ["CREATE ", "ALTER "].iter().find_map(|verb| {
                let rest = line.strip_prefix(verb)?.strip_prefix(kind)?;
                ident_at(rest.strip_prefix(' ')?).map(|id| id.value)
            })
        };
        let skip = match (named("ROLE"), named("TABLESPACE")) {
            (Some(r), _) if roles.contains(&r) => Some("role"),
            (_, Some(t)) if tablespaces.contains(&t) => Some("tablespace"),
            _ => None,
        };
        if let Some(what) = skip {
            out.push_str(&format!("-- bica: {what} exists, left as it is: "));
        }
        out.push_str(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        assert_eq!(ident_at("regression SET x").unwrap().value, "regression");
        assert_eq!(ident_at("Reg_1 x").unwrap().value, "reg_1");
        let q = ident_at(r#""it's a ""db"" = x" OWNER"#).unwrap();
        assert_eq!(q.value, r#"it's a "db" = x"#);
        assert_eq!(q.len, r#""it's a ""db"" = x""#.len());
        assert!(ident_at("\"open").is_none());
        assert!(ident_at("1abc").is_none());
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }

    #[test]
    fn statements_respect_strings_comments_and_meta_commands() {
        let text = "\\connect x\n-- a; comment\nCOMMENT ON DATABASE x IS 'a;\nb''c';\nSELECT E'\\';' ;\nCREATE FUNCTION f() RETURNS int AS $q$ SELECT 1; $q$;\n";
        let s = statements(text).unwrap();
        assert_eq!(
            s,
            vec![
                "COMMENT ON DATABASE x IS 'a;\nb''c'".to_string(),
                "SELECT E'\\';'".to_string(),
                "CREATE FUNCTION f() RETURNS int AS $q$ SELECT 1; $q$".to_string(),
            ]
        );
        assert!(statements("SELECT 'open").is_err());
        assert!(statements("SELECT 1; SELECT 2").is_err());
    }

    #[test]
    fn keywords_outside_strings() {
        assert_eq!(find_keyword("x 'OWNER' OWNER TO", "owner"), Some(10));
        assert_eq!(find_keyword("\"OWNER\" y", "OWNER"), None);
        assert_eq!(find_keyword("OWNERS", "OWNER"), None);
        assert_eq!(find_keyword("é OWNER", "OWNER"), Some(3));
        assert_eq!(find_keyword("OWNEé", "OWNER"), None);
    }

    #[test]
    fn existing_globals_are_left_alone() {
        let sql = "CREATE ROLE app;\nALTER ROLE app WITH NOSUPERUSER LOGIN PASSWORD 'x';\n\
CREATE ROLE \"Odd \"\"name\"\"; x\";\nALTER ROLE \"Odd \"\"name\"\"; x\" WITH LOGIN;\n\
CREATE ROLE new_one;\nALTER ROLE new_one WITH LOGIN;\nCREATE ROLE application;\n\
GRANT app TO new_one;\nCREATE TABLESPACE fast OWNER app LOCATION '/x';\n\
CREATE TABLESPACE \"app\" LOCATION '/y';\n";
        let roles = ["app", "Odd \"name\"; x"].map(String::from).into();
        let tablespaces = ["fast"].map(String::from).into();
        let out = keep_existing_globals(sql, &roles, &tablespaces);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0],
            "-- bica: role exists, left as it is: CREATE ROLE app;"
        );
        assert!(lines[1].starts_with("-- bica: role exists, left as it is: ALTER ROLE app "));
        assert!(lines[2].starts_with("-- bica: role exists, left as it is: CREATE ROLE \"Odd"));
        assert!(lines[3].starts_with("-- bica: role exists, left as it is: ALTER ROLE \"Odd"));
        // A new role, a name that only starts like an existing one, grants: kept.
        assert_eq!(lines[4], "CREATE ROLE new_one;");
        assert_eq!(lines[5], "ALTER ROLE new_one WITH LOGIN;");
        assert_eq!(lines[6], "CREATE ROLE application;");
        assert_eq!(lines[7], "GRANT app TO new_one;");
        assert!(lines[8]
            .starts_with("-- bica: tablespace exists, left as it is: CREATE TABLESPACE fast"));
        // A tablespace named like an existing role is not that role.
        assert_eq!(lines[9], "CREATE TABLESPACE \"app\" LOCATION '/y';");
        assert_eq!(lines.len(), sql.lines().count());
    }
}
