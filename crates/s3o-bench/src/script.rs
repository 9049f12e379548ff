//! pgbench custom scripts generated from captured statement text.
//!
//! The script holds exactly the statements s3o sent for one operation, in order, with the
//! transaction control it sent (`BEGIN` … `COMMIT`, or none for autocommit statements).
//! Each `$n` placeholder becomes a pgbench variable: the workload binds the parameters that
//! vary per transaction (keys, ids) to variables it computes in the prelude; every other
//! parameter becomes a constant variable defined with `-D name=value` holding the value the
//! sample operation sent. `NULL` parameters are inlined as `NULL`, because pgbench variables
//! cannot carry SQL NULL (a variable set to NULL is sent as the text `NULL`).

use crate::values::{Value, pg_params};

/// One statement of the sample operation, with its parameter values.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Stmt {
    /// The statement text as sent.
    pub(crate) sql: String,
    /// Its parameters, `$1` first.
    pub(crate) params: Vec<Value>,
}

impl Stmt {
    /// From a captured PostgreSQL event.
    pub(crate) fn from_pg(c: &crate::capture::Captured) -> Result<Stmt, String> {
        Ok(Stmt {
            sql: c.sql.clone(),
            params: pg_params(&c.params)?,
        })
    }

    /// Transaction control (`BEGIN`, `COMMIT`, `ROLLBACK`) rather than a data statement.
    pub(crate) fn is_control(&self) -> bool {
        let s = self.sql.trim().to_ascii_uppercase();
        s.starts_with("BEGIN") || s == "COMMIT" || s == "ROLLBACK"
    }
}

/// A generated pgbench script: its text and the `-D name=value` definitions it needs.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Script {
    /// The script file's contents.
    pub(crate) text: String,
    /// Variables to define on the command line (`-D name=value`).
    pub(crate) defines: Vec<(String, String)>,
}

/// How the workload binds the parameters of the sample operation.
pub(crate) trait Binder {
    /// Meta-command lines run first in every transaction (e.g. `\set key ...`).
    fn prelude(&self) -> Vec<String>;
    /// What replaces parameter `param` (0-based) of statement `stmt` (0-based among all
    /// captured statements), whose sample value was `value`: a variable (`:key`) or an
    /// expression over variables; `None` ⇒ a constant.
    fn bind(&self, stmt: usize, sql: &str, param: usize, value: &Value) -> Option<String>;
    /// A meta-command that ends statement `stmt` instead of `;` (e.g. `\aset`).
    fn terminator(&self, _stmt: usize) -> Option<String> {
        None
    }
    /// Meta-command lines inserted after statement `stmt`.
    fn after(&self, _stmt: usize) -> Vec<String> {
        Vec::new()
    }
}

/// Generates the pgbench script for `stmts`, binding parameters with `binder`.
pub(crate) fn generate(title: &str, stmts: &[Stmt], binder: &dyn Binder) -> Result<Script, String> {
    if stmts.is_empty() {
        return Err(format!(
            "{title}: no statements were captured (is the s3o::sql subscriber installed?)"
        ));
    }
    let mut text = format!("-- {title}: generated from the statements s3o sent (captured)\n");
    let mut defines = Vec::new();
    for line in binder.prelude() {
        text.push_str(&line);
        text.push('\n');
    }
    for (si, st) in stmts.iter().enumerate() {
        let mut names = Vec::with_capacity(st.params.len());
        for (pi, v) in st.params.iter().enumerate() {
            let name = match binder.bind(si, &st.sql, pi, v) {
                Some(expr) => expr,
                None => match v.pgbench_text() {
                    None => "NULL".to_owned(),
                    Some(_) if matches!(v, Value::Other(_)) => {
                        return Err(format!(
                            "{title}: statement {si} parameter ${} has a value pgbench cannot \
                             pass ({v:?}) and the workload did not bind it",
                            pi + 1
                        ));
                    }
                    Some(t) => {
                        let var = format!("s{si}p{}", pi + 1);
                        defines.push((var.clone(), t));
                        format!(":{var}")
                    }
                },
            };
            names.push(name);
        }
        let sql =
            substitute(&st.sql, &names).map_err(|e| format!("{title}: statement {si}: {e}"))?;
        text.push_str(&sql);
        match binder.terminator(si) {
            Some(t) => {
                text.push(' ');
                text.push_str(&t);
            }
            None => text.push(';'),
        }
        text.push('\n');
        for line in binder.after(si) {
            text.push_str(&line);
            text.push('\n');
        }
    }
    Ok(Script { text, defines })
}

/// Replaces every `$n` outside quoted literals by `names[n-1]`, and folds the statement onto
/// one line (pgbench ends a command at `;` or a meta-command).
pub(crate) fn substitute(sql: &str, names: &[String]) -> Result<String, String> {
    let b = sql.as_bytes();
    let mut out = String::with_capacity(sql.len() + 16);
    let mut i = 0;
    let mut in_quote = false;
    let mut seg_start = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'\'' {
            in_quote = !in_quote;
            i += 1;
            continue;
        }
        if !in_quote && c == b'$' && b.get(i + 1).is_some_and(u8::is_ascii_digit) {
            out.push_str(&sql[seg_start..i]);
            let mut k = i + 1;
            while k < b.len() && b[k].is_ascii_digit() {
                k += 1;
            }
            let n: usize = sql[i + 1..k].parse().map_err(|e| format!("{e}"))?;
            let name = n
                .checked_sub(1)
                .and_then(|ix| names.get(ix))
                .ok_or_else(|| format!("${n} has no captured parameter"))?;
            out.push_str(name);
            i = k;
            seg_start = k;
            continue;
        }
        i += 1;
    }
    if in_quote {
        return Err("unterminated quoted literal".into());
    }
    out.push_str(&sql[seg_start..]);
    let one_line: Vec<&str> = out.split_whitespace().collect();
    Ok(one_line.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct KeyBinder;

    impl Binder for KeyBinder {
        fn prelude(&self) -> Vec<String> {
            vec![
                "\\set i :i + 1".into(),
                "\\set key 1000 + :client_id * 100 + :i".into(),
            ]
        }
        fn bind(&self, _stmt: usize, _sql: &str, _param: usize, value: &Value) -> Option<String> {
            (*value == Value::Text("k-sample".into())).then(|| ":key".into())
        }
        fn terminator(&self, stmt: usize) -> Option<String> {
            (stmt == 2).then(|| "\\aset".into())
        }
        fn after(&self, stmt: usize) -> Vec<String> {
            if stmt == 2 {
                vec!["\\set c0 :id - 1".into()]
            } else {
                Vec::new()
            }
        }
    }

    fn st(sql: &str, params: Vec<Value>) -> Stmt {
        Stmt {
            sql: sql.into(),
            params,
        }
    }

    #[test]
    fn script_is_the_captured_sql_with_variables() {
        let stmts = vec![
            st("BEGIN", vec![]),
            st(
                "SELECT pg_advisory_xact_lock($1::int4, hashtext($2))",
                vec![Value::Int(7), Value::Text("k-sample".into())],
            ),
            st(
                "INSERT INTO t (a, b, c, d, e)\n   VALUES ($1, $2, COALESCE($3, NOW()), $4, '$5 x')",
                vec![
                    Value::Text("k-sample".into()),
                    Value::Bool(true),
                    Value::Null,
                    Value::Time(0, 0),
                ],
            ),
            st("COMMIT", vec![]),
        ];
        let s = generate("record", &stmts, &KeyBinder).unwrap();
        let lines: Vec<&str> = s.text.lines().collect();
        assert_eq!(
            lines,
            vec![
                "-- record: generated from the statements s3o sent (captured)",
                "\\set i :i + 1",
                "\\set key 1000 + :client_id * 100 + :i",
                "BEGIN;",
                "SELECT pg_advisory_xact_lock(:s1p1::int4, hashtext(:key));",
                "INSERT INTO t (a, b, c, d, e) VALUES (:key, :s2p2, COALESCE(NULL, NOW()), \
                 :s2p4, '$5 x') \\aset",
                "\\set c0 :id - 1",
                "COMMIT;",
            ]
        );
        assert_eq!(
            s.defines,
            vec![
                ("s1p1".to_owned(), "7".to_owned()),
                ("s2p2".to_owned(), "true".to_owned()),
                (
                    "s2p4".to_owned(),
                    "1970-01-01 00:00:00.000000+00".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn placeholders_map_by_number_not_prefix() {
        let names: Vec<String> = (1..=10).map(|n| format!(":v{n}")).collect();
        assert_eq!(
            substitute("f($1, $10, $1)", &names).unwrap(),
            "f(:v1, :v10, :v1)"
        );
        assert!(substitute("f($11)", &names).is_err());
        assert!(substitute("f('x)", &names).is_err());
    }

    #[test]
    fn unbound_unpassable_values_are_refused() {
        let stmts = vec![st("SELECT $1", vec![Value::Other("[\"a\"]".into())])];
        assert!(generate("x", &stmts, &KeyBinder).is_err());
        assert!(generate("x", &[], &KeyBinder).is_err());
    }
}
