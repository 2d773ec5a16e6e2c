//! What a COPY from the source reads: a table, some columns, perhaps a row
//! filter or a page range, as binary or text. Pure.

use crate::sqltext::{qualified, quote_ident};

/// How the source is read.
#[derive(Debug, Clone, PartialEq)]
pub struct CopySource {
    pub schema: String,
    pub table: String,
    pub columns: Vec<String>,
    pub filter: Option<String>,
    pub binary: bool,
    /// A page range [lo, hi) of the table (hi None: to the end), for split copies.
    pub pages: Option<(i64, Option<i64>)>,
}

impl CopySource {
    /// The COPY statement run on the source. A plain table COPY when possible
    /// (no executor overhead); a query when a filter applies. The filter sits on
    /// lines of its own so a trailing `--` comment cannot swallow our parenthesis.
    pub fn sql(&self) -> String {
        let cols: Vec<String> = self.columns.iter().map(|c| quote_ident(c)).collect();
        let format = if self.binary { " (FORMAT binary)" } else { "" };
        let rel = qualified(&self.schema, &self.table);
        if let Some((lo, hi)) = self.pages {
            // A TID range scan reads just these pages (PostgreSQL 14+).
            let upper = hi
                .map(|h| format!(" AND ctid < '({h},0)'::tid"))
                .unwrap_or_default();
            return format!(
                "COPY (SELECT {} FROM ONLY {rel} WHERE ctid >= '({lo},0)'::tid{upper}) TO STDOUT{format}",
                cols.join(", ")
            );
        }
        match &self.filter {
            // A table of no columns (legal) has no column list to give.
            None if cols.is_empty() => format!("COPY {rel} TO STDOUT{format}"),
            None => format!("COPY {rel} ({}) TO STDOUT{format}", cols.join(", ")),
            Some(f) => format!(
                "COPY (SELECT {} FROM ONLY {rel} WHERE (\n{f}\n)) TO STDOUT{format}",
                cols.join(", ")
            ),
        }
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
            pages: None,
        };
        assert_eq!(
            s.sql(),
            "COPY \"public\".\"T x\" (\"id\", \"a\"\"b\") TO STDOUT (FORMAT binary)"
        );
        assert_eq!(s.filter_probe_sql(), None);
        s.binary = false;
        s.filter = Some("id > 1 -- note".into());
        assert_eq!(
            s.sql(),
            "COPY (SELECT \"id\", \"a\"\"b\" FROM ONLY \"public\".\"T x\" WHERE (\nid > 1 -- note\n)) TO STDOUT"
        );
        assert!(s
            .filter_probe_sql()
            .unwrap()
            .ends_with("WHERE (\nid > 1 -- note\n)"));
    }
}
