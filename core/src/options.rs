//! The JSON options of the API as one typed struct, parsed strictly: an unknown
//! key, a wrong type or malformed JSON is an error that names the key.

use crate::error::{CloneError, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Conflict {
    #[default]
    Error,
    Skip,
    Replace,
    Rename,
}

/// A mask is either a strategy name or an object with a `type` and parameters.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum MaskSpec {
    Strategy(String),
    Detailed(BTreeMap<String, serde_json::Value>),
}

/// A size in bytes, given as a number or as text like `'1GB'`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ByteSize(pub u64);

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(ByteSize(n)),
            Raw::S(s) => parse_size(&s)
                .map(ByteSize)
                .map_err(serde::de::Error::custom),
        }
    }
}

pub fn parse_size(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| format!("invalid size \"{s}\""))?;
    let mult: u64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "KB" | "K" | "KIB" => 1 << 10,
        "MB" | "M" | "MIB" => 1 << 20,
        "GB" | "G" | "GIB" => 1 << 30,
        "TB" | "T" | "TIB" => 1 << 40,
        _ => return Err(format!("invalid size unit in \"{s}\"")),
    };
    if n < 0.0 {
        return Err(format!("invalid size \"{s}\""));
    }
    Ok((n * mult as f64) as u64)
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Options {
    pub indexes: bool,
    pub constraints: bool,
    pub triggers: bool,
    pub matviews: bool,
    pub columns: Option<Vec<String>>,
    #[serde(rename = "where")]
    pub where_: Option<String>,
    pub conflict: Conflict,
    pub parallel: Option<u32>,
    pub mask: Option<BTreeMap<String, MaskSpec>>,
    /// Refuse a clone that would copy a column `discover_sensitive` flags
    /// without a mask rule.
    pub require_masks: bool,
    pub include_schemas: Option<Vec<String>>,
    pub exclude_schemas: Option<Vec<String>>,
    pub include_tables: Option<Vec<String>>,
    pub exclude_tables: Option<Vec<String>>,
    pub exclude_table_data: Option<Vec<String>>,
    pub split_tables_larger_than: Option<ByteSize>,
    pub snapshot: Option<String>,
    pub roles: bool,
    /// Source tablespace → tablespace here (`pg_default` for the default).
    pub tablespaces: Option<BTreeMap<String, String>>,
    pub follow: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            indexes: true,
            constraints: true,
            triggers: true,
            matviews: true,
            columns: None,
            where_: None,
            conflict: Conflict::Error,
            parallel: None,
            mask: None,
            require_masks: false,
            include_schemas: None,
            exclude_schemas: None,
            include_tables: None,
            exclude_tables: None,
            exclude_table_data: None,
            split_tables_larger_than: None,
            snapshot: None,
            roles: false,
            tablespaces: None,
            follow: false,
        }
    }
}

/// What kind of call the options are for: some keys only make sense for one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Table,
    Schema,
    Database,
}

impl Options {
    /// Parse the options text; NULL or blank means all defaults.
    pub fn parse(text: Option<&str>) -> Result<Options> {
        let Some(text) = text.filter(|t| !t.trim().is_empty()) else {
            return Ok(Options::default());
        };
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| CloneError::InvalidOptions(format!("malformed JSON: {e}")))?;
        let serde_json::Value::Object(map) = &value else {
            return Err(CloneError::InvalidOptions(
                "options must be a JSON object".into(),
            ));
        };
        // Check each key on its own first, so the message names the key at fault.
        let known = Options::default_keys();
        for (key, v) in map {
            if !known.contains(&key.as_str()) {
                return Err(CloneError::InvalidOptions(format!(
                    "unknown option \"{key}\" (known: {})",
                    known.join(", ")
                )));
            }
            let mut one = serde_json::Map::new();
            one.insert(key.clone(), v.clone());
            if let Err(e) = serde_json::from_value::<Options>(serde_json::Value::Object(one)) {
                return Err(CloneError::InvalidOptions(format!(
                    "option \"{key}\": {}",
                    strip_serde_position(&e)
                )));
            }
        }
        let opts: Options = serde_json::from_value(value)
            .map_err(|e| CloneError::InvalidOptions(strip_serde_position(&e)))?;
        opts.validate()?;
        Ok(opts)
    }

    fn default_keys() -> Vec<&'static str> {
        vec![
            "indexes",
            "constraints",
            "triggers",
            "matviews",
            "columns",
            "where",
            "conflict",
            "parallel",
            "mask",
            "require_masks",
            "include_schemas",
            "exclude_schemas",
            "include_tables",
            "exclude_tables",
            "exclude_table_data",
            "split_tables_larger_than",
            "snapshot",
            "roles",
            "tablespaces",
            "follow",
        ]
    }

    fn validate(&self) -> Result<()> {
        if let Some(cols) = &self.columns {
            if cols.is_empty() {
                return Err(CloneError::InvalidOptions(
                    "option \"columns\": the list is empty".into(),
                ));
            }
            let mut seen = std::collections::HashSet::new();
            for c in cols {
                if !seen.insert(c) {
                    return Err(CloneError::InvalidOptions(format!(
                        "option \"columns\": column \"{c}\" is listed twice"
                    )));
                }
            }
        }
        if self.parallel == Some(0) {
            return Err(CloneError::InvalidOptions(
                "option \"parallel\": must be at least 1".into(),
            ));
        }
        Ok(())
    }

    /// Refuse keys that do not apply to this kind of call, or that this build
    /// does not carry out yet: silently ignoring them would clone something other
    /// than what the caller asked for.
    pub fn check_scope(&self, scope: Scope) -> Result<()> {
        let table_only = [
            ("columns", self.columns.is_some()),
            ("where", self.where_.is_some()),
        ];
        let multi_only = [
            ("include_schemas", self.include_schemas.is_some()),
            ("exclude_schemas", self.exclude_schemas.is_some()),
            ("include_tables", self.include_tables.is_some()),
            ("exclude_tables", self.exclude_tables.is_some()),
            ("exclude_table_data", self.exclude_table_data.is_some()),
        ];
        if scope != Scope::Table {
            if let Some((k, _)) = table_only.iter().find(|(_, set)| *set) {
                return Err(CloneError::InvalidOptions(format!(
                    "option \"{k}\" applies to table calls only"
                )));
            }
        } else if let Some((k, _)) = multi_only.iter().find(|(_, set)| *set) {
            return Err(CloneError::InvalidOptions(format!(
                "option \"{k}\" applies to schema and database calls only"
            )));
        }
        let unsupported = [
            ("snapshot", self.snapshot.is_some()),
            ("follow", self.follow),
        ];
        if let Some((k, _)) = unsupported.iter().find(|(_, set)| *set) {
            return Err(CloneError::NotSupported(format!(
                "option \"{k}\" is not supported by this version of pgclone"
            )));
        }
        Ok(())
    }
}

/// serde_json appends "at line 1 column 17"; the key name says more to a DBA.
fn strip_serde_position(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.rfind(" at line ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

impl Options {
    /// The options as JSON that `parse` reads back to the same value (how a
    /// job keeps what it was asked).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn options_survive_a_round_trip_through_json() {
        let o = Options::parse(Some(
            r#"{"parallel": 3, "conflict": "replace", "exclude_tables": ["a.*"], "split_tables_larger_than": "1GB", "indexes": false}"#,
        ))
        .unwrap();
        assert_eq!(Options::parse(Some(&o.to_json())).unwrap(), o);
        let d = Options::default();
        assert_eq!(Options::parse(Some(&d.to_json())).unwrap(), d);
    }

    fn err(text: &str) -> String {
        Options::parse(Some(text)).unwrap_err().to_string()
    }

    #[test]
    fn defaults_when_null_or_blank() {
        assert_eq!(Options::parse(None).unwrap(), Options::default());
        assert_eq!(Options::parse(Some("  ")).unwrap(), Options::default());
        assert_eq!(Options::parse(Some("{}")).unwrap(), Options::default());
    }

    #[test]
    fn every_key_parses() {
        let o = Options::parse(Some(
            r#"{"indexes": false, "constraints": false, "triggers": false, "matviews": false,
                "columns": ["a","b"], "where": "a > 1", "conflict": "replace", "parallel": 4,
                "mask": {"email": "email", "n": {"type": "random_int", "min": 1, "max": 9}},
                "include_schemas": ["s*"], "exclude_schemas": ["tmp"], "include_tables": ["s.t"],
                "exclude_tables": ["s.x"], "exclude_table_data": ["s.log"],
                "split_tables_larger_than": "1GB", "snapshot": "00000003-1", "roles": true, "follow": false}"#,
        ))
        .unwrap();
        assert!(!o.indexes && !o.constraints && !o.triggers && !o.matviews);
        assert_eq!(
            o.columns.as_deref(),
            Some(&["a".to_string(), "b".to_string()][..])
        );
        assert_eq!(o.where_.as_deref(), Some("a > 1"));
        assert_eq!(o.conflict, Conflict::Replace);
        assert_eq!(o.parallel, Some(4));
        assert_eq!(o.split_tables_larger_than, Some(ByteSize(1 << 30)));
        assert!(matches!(
            o.mask.as_ref().unwrap()["n"],
            MaskSpec::Detailed(_)
        ));
        assert!(o.roles);
    }

    #[test]
    fn errors_name_the_key() {
        assert!(err("{not json").contains("malformed JSON"));
        assert!(err("[1,2]").contains("JSON object"));
        assert!(err(r#"{"indexs": true}"#).contains("unknown option \"indexs\""));
        assert!(err(r#"{"indexes": "yes"}"#).contains("option \"indexes\""));
        assert!(err(r#"{"parallel": -1}"#).contains("option \"parallel\""));
        assert!(err(r#"{"parallel": 0}"#).contains("option \"parallel\""));
        assert!(err(r#"{"conflict": "merge"}"#).contains("option \"conflict\""));
        assert!(err(r#"{"columns": "a"}"#).contains("option \"columns\""));
        assert!(err(r#"{"columns": []}"#).contains("empty"));
        assert!(err(r#"{"columns": ["a","a"]}"#).contains("twice"));
        assert!(
            err(r#"{"split_tables_larger_than": "1 parsec"}"#).contains("split_tables_larger_than")
        );
    }

    #[test]
    fn scope_rules() {
        let o = Options::parse(Some(r#"{"where": "a>1"}"#)).unwrap();
        assert!(o.check_scope(Scope::Table).is_ok());
        assert!(o.check_scope(Scope::Schema).is_err());
        let o = Options::parse(Some(r#"{"exclude_tables": ["x"]}"#)).unwrap();
        assert!(o.check_scope(Scope::Table).is_err());
        assert!(o.check_scope(Scope::Database).is_ok());
        let o = Options::parse(Some(r#"{"follow": true}"#)).unwrap();
        assert_eq!(o.check_scope(Scope::Table).unwrap_err().sqlstate(), "0A000");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("100"), Ok(100));
        assert_eq!(parse_size("2MB"), Ok(2 << 20));
        assert_eq!(parse_size("1.5 GB"), Ok(3 << 29));
        assert!(parse_size("GB").is_err());
    }
}
