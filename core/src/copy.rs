//! What a COPY from the source reads: a table, some columns, perhaps a row
//! filter or a page range, as binary or text. Pure.

use crate::mask::{select_item, MaskKey, MaskedColumn};
use crate::sqltext::{qualified, quote_ident};

use serde::{Deserialize, Serialize};

/// A part of a table, for a copy split between several workers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Part {
    /// Pages [lo, hi) of the heap (hi None: to the end, so rows on pages
    /// added since the size was read still come).
    Pages(i64, Option<i64>),
    /// Rows whose integer key is in [lo, hi) (lo None: from the start, hi
    /// None: to the end, so no row is left out whatever its key).
    Key {
        column: String,
        lo: Option<i64>,
        hi: Option<i64>,
    },
}

/// How the source is read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CopySource {
    pub schema: String,
    pub table: String,
    pub columns: Vec<String>,
    pub filter: Option<String>,
    pub binary: bool,
    /// A part of the table, for split copies.
    pub part: Option<Part>,
    /// Columns the source masks before it sends them.
    #[serde(default)]
    pub masks: Vec<MaskedColumn>,
}

impl CopySource {
    /// The COPY statement run on the source. A plain table COPY when possible
    /// (no executor overhead); a query when a filter, a part or a mask
    /// applies. The filter sits on lines of its own so a trailing `--`
    /// comment cannot swallow our parenthesis. Masked columns need the key of
    /// the hash mask, which is never stored with the plan.
    pub fn sql(&self, key: Option<&MaskKey>) -> String {
        let item = |c: &String| match self.masks.iter().find(|m| &m.column == c) {
            Some(m) => select_item(m, key.expect("a masked copy is given the mask key")),
            None => quote_ident(c),
        };
        let cols: Vec<String> = self.columns.iter().map(item).collect();
        let format = if self.binary { " (FORMAT binary)" } else { "" };
        let rel = qualified(&self.schema, &self.table);
        let mut conds: Vec<String> = Vec::new();
        if let Some(part) = &self.part {
            conds.push(match part {
                // A TID range scan reads just these pages (PostgreSQL 14+).
                Part::Pages(lo, hi) => {
                    let upper = hi
                        .map(|h| format!(" AND ctid < '({h},0)'::tid"))
                        .unwrap_or_default();
                    format!("ctid >= '({lo},0)'::tid{upper}")
                }
                // The key's index reads just these rows.
                Part::Key { column, lo, hi } => {
                    let c = quote_ident(column);
                    match (lo, hi) {
                        (Some(l), Some(h)) => format!("{c} >= {l} AND {c} < {h}"),
                        (Some(l), None) => format!("{c} >= {l}"),
                        (None, Some(h)) => format!("{c} < {h}"),
                        (None, None) => "true".into(),
                    }
                }
            });
        }
        if let Some(f) = &self.filter {
            conds.push(format!("(\n{f}\n)"));
        }
        if conds.is_empty() && self.masks.is_empty() {
            // A table of no columns (legal) has no column list to give.
            return if cols.is_empty() {
                format!("COPY {rel} TO STDOUT{format}")
            } else {
                format!("COPY {rel} ({}) TO STDOUT{format}", cols.join(", "))
            };
        }
        let cond = if conds.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conds.join(" AND "))
        };
        format!(
            "COPY (SELECT {} FROM ONLY {rel}{cond}) TO STDOUT{format}",
            cols.join(", ")
        )
    }

    /// A statement that checks the filter on the source without reading a row.
    pub fn filter_probe_sql(&self) -> Option<String> {
        let f = self.filter.as_ref()?;
        Some(format!(
            "SELECT 1 FROM ONLY {} WHERE (\n{f}\n)",
            qualified(&self.schema, &self.table)
        ))
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn source_sql_shapes() {
        let mut s = CopySource {
            schema: "public".into(),
            table: "T x".into(),
            columns: vec!["id".into(), "a\"b".into()],
            filter: None,
            binary: true,
            part: None,
            masks: vec![],
        };
        assert_eq!(
            s.sql(None),
            "COPY \"public\".\"T x\" (\"id\", \"a\"\"b\") TO STDOUT (FORMAT binary)"
        );
        assert_eq!(s.filter_probe_sql(), None);
        s.binary = false;
        s.filter = Some("id > 1 -- note".into());
        assert_eq!(
            s.sql(None),
            "COPY (SELECT \"id\", \"a\"\"b\" FROM ONLY \"public\".\"T x\" WHERE (\nid > 1 -- note\n)) TO STDOUT"
        );
        assert!(s
            .filter_probe_sql()
            .unwrap()
            .ends_with("WHERE (\nid > 1 -- note\n)"));
    }

    #[test]
    fn parts_of_a_table() {
        let mut s = CopySource {
            schema: "s".into(),
            table: "t".into(),
            columns: vec!["id".into()],
            filter: None,
            binary: false,
            part: Some(Part::Pages(0, Some(100))),
            masks: vec![],
        };
        assert!(s
            .sql(None)
            .contains("WHERE ctid >= '(0,0)'::tid AND ctid < '(100,0)'::tid"));
        s.part = Some(Part::Key {
            column: "id".into(),
            lo: Some(10),
            hi: None,
        });
        assert!(s.sql(None).contains("WHERE \"id\" >= 10)"));
        s.part = Some(Part::Key {
            column: "id".into(),
            lo: None,
            hi: Some(10),
        });
        assert!(s.sql(None).contains("WHERE \"id\" < 10)"));
    }
}
