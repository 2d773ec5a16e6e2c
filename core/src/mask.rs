//! Masking: the rules of the `mask` option, checked against each column's
//! type before any data moves, and rendered as SQL expressions that the
//! source evaluates inside its `COPY (SELECT ...)`, so raw values of a masked
//! column never reach the target. Pure.

use crate::catalog::{Column, Constraint, TableDef};
use crate::options::MaskSpec;
use crate::sqltext::{quote_ident, quote_literal};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// How a column's values are replaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Strategy {
    /// First letter, `***@`, the original domain.
    Email,
    /// `XXXX`.
    Name,
    /// `***-` and the last four characters.
    Phone,
    /// `prefix` and `suffix` characters kept, `***` between.
    Partial {
        prefix: u32,
        suffix: u32,
    },
    /// Keyed HMAC-SHA256, first 128 bits, 32 lowercase hex characters.
    Hash,
    Null,
    /// An integer in [min, max].
    RandomInt {
        min: i64,
        max: i64,
    },
    Constant(String),
}

/// Largest `prefix` or `suffix` of a partial mask.
const MAX_KEEP: u64 = 1000;

impl Strategy {
    pub fn name(&self) -> &'static str {
        match self {
            Strategy::Email => "email",
            Strategy::Name => "name",
            Strategy::Phone => "phone",
            Strategy::Partial { .. } => "partial",
            Strategy::Hash => "hash",
            Strategy::Null => "null",
            Strategy::RandomInt { .. } => "random_int",
            Strategy::Constant(_) => "constant",
        }
    }

    /// A rule as the options give it: `"email"`, or
    /// `{"type": "partial", "prefix": 2, "suffix": 3}`.
    pub fn parse(spec: &MaskSpec) -> Result<Strategy, String> {
        let (kind, params) = match spec {
            MaskSpec::Strategy(s) => (s.as_str(), None),
            MaskSpec::Detailed(m) => match m.get("type") {
                Some(serde_json::Value::String(t)) => (t.as_str(), Some(m)),
                _ => return Err("a mask object needs a \"type\" (a strategy name)".into()),
            },
        };
        let allowed: &[&str] = match kind {
            "partial" => &["prefix", "suffix"],
            "random_int" => &["min", "max"],
            "constant" => &["value"],
            _ => &[],
        };
        if let Some(m) = params {
            if let Some(k) = m
                .keys()
                .find(|k| *k != "type" && !allowed.contains(&k.as_str()))
            {
                return Err(format!("mask \"{kind}\" takes no parameter \"{k}\""));
            }
        }
        let int = |key: &str| -> Result<Option<i64>, String> {
            match params.and_then(|m| m.get(key)) {
                None => Ok(None),
                Some(v) => v
                    .as_i64()
                    .map(Some)
                    .ok_or_else(|| format!("mask \"{kind}\": \"{key}\" must be an integer")),
            }
        };
        let keep = |key: &str| -> Result<u32, String> {
            match int(key)? {
                None => Ok(1),
                Some(n) if (0..=MAX_KEEP as i64).contains(&n) => Ok(n as u32),
                Some(_) => Err(format!(
                    "mask \"partial\": \"{key}\" must be from 0 to {MAX_KEEP}"
                )),
            }
        };
        Ok(match kind {
            "email" => Strategy::Email,
            "name" => Strategy::Name,
            "phone" => Strategy::Phone,
            "partial" => Strategy::Partial {
                prefix: keep("prefix")?,
                suffix: keep("suffix")?,
            },
            "hash" => Strategy::Hash,
            "null" => Strategy::Null,
            "random_int" => {
                let (min, max) = (int("min")?.unwrap_or(0), int("max")?.unwrap_or(99999));
                if min > max {
                    return Err(format!(
                        "mask \"random_int\": \"min\" ({min}) is above \"max\" ({max})"
                    ));
                }
                Strategy::RandomInt { min, max }
            }
            "constant" => match params.and_then(|m| m.get("value")) {
                Some(serde_json::Value::String(s)) => Strategy::Constant(s.clone()),
                Some(v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_))) => {
                    Strategy::Constant(v.to_string())
                }
                Some(serde_json::Value::Null) => {
                    return Err("mask \"constant\": for NULL use the \"null\" mask".into())
                }
                _ => {
                    return Err(
                        "mask \"constant\" needs a \"value\": {\"type\": \"constant\", \"value\": ...}"
                            .into(),
                    )
                }
            },
            other => {
                return Err(format!(
                    "unknown mask \"{other}\" (known: email, name, phone, partial, hash, null, random_int, constant)"
                ))
            }
        })
    }

    /// The same input gives the same output and different inputs different
    /// outputs: what a key (primary, unique, or joined by a foreign key)
    /// needs to stay a key.
    pub fn keeps_keys(&self) -> bool {
        matches!(self, Strategy::Hash)
    }

    /// The longest text it gives, when that does not depend on the value.
    fn fixed_len(&self) -> Option<usize> {
        match self {
            Strategy::Name => Some(4),
            Strategy::Phone => Some(8),
            Strategy::Hash => Some(32),
            Strategy::Null => Some(0),
            Strategy::Constant(v) => Some(v.chars().count()),
            Strategy::RandomInt { min, max } => {
                Some(min.to_string().len().max(max.to_string().len()))
            }
            Strategy::Email | Strategy::Partial { .. } => None,
        }
    }
}

/// What masking needs to know of a column's type, read with the columns:
/// the category (`pg_type.typcategory`, a domain's being its base's), the
/// base type (domains looked through) with its modifier, and for arrays the
/// element's category and type.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct TypeFacts {
    #[serde(default)]
    pub category: String,
    #[serde(default)]
    pub base_oid: u32,
    #[serde(default)]
    pub typmod: i32,
    #[serde(default)]
    pub elem_category: Option<String>,
    #[serde(default)]
    pub elem_oid: u32,
}

const INT2: u32 = 21;
const INT4: u32 = 23;
const INT8: u32 = 20;
const NUMERIC: u32 = 1700;
const UUID: u32 = 2950;
const VARCHAR: u32 = 1043;
const BPCHAR: u32 = 1042;

/// What a column holds, as masks see it.
#[derive(Debug, Clone, PartialEq)]
enum Holds {
    /// A string type, perhaps of at most `max` characters.
    Text {
        max: Option<usize>,
    },
    Uuid,
    /// An integer of this range.
    Int {
        lo: i64,
        hi: i64,
    },
    /// A numeric, perhaps with precision and scale.
    Numeric {
        digits: Option<u32>,
    },
    /// Anything else: only `null` and `constant` make sense.
    Other(&'static str),
}

fn holds(category: &str, oid: u32, typmod: i32) -> Holds {
    let chars = (typmod > 4).then(|| (typmod - 4) as usize);
    match (category, oid) {
        (_, INT2) => Holds::Int {
            lo: i16::MIN as i64,
            hi: i16::MAX as i64,
        },
        (_, INT4) => Holds::Int {
            lo: i32::MIN as i64,
            hi: i32::MAX as i64,
        },
        (_, INT8) => Holds::Int {
            lo: i64::MIN,
            hi: i64::MAX,
        },
        (_, NUMERIC) => Holds::Numeric {
            // Digits left of the point: precision minus scale.
            digits: (typmod >= 4).then(|| {
                let t = (typmod - 4) as u32;
                ((t >> 16) & 0xffff).saturating_sub(t & 0xffff)
            }),
        },
        (_, UUID) => Holds::Uuid,
        (_, VARCHAR) | (_, BPCHAR) => Holds::Text { max: chars },
        ("S", _) => Holds::Text { max: None },
        ("N", _) => Holds::Other("a number"),
        ("D", _) => Holds::Other("a date or time"),
        ("B", _) => Holds::Other("a boolean"),
        ("I", _) => Holds::Other("a network address"),
        ("E", _) => Holds::Other("an enum"),
        _ => Holds::Other("this type"),
    }
}

/// A masked column as the copy renders it (the key comes at run time: it is
/// never stored with a job's plan).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaskedColumn {
    pub column: String,
    /// The column's type, as the source names it (the mask's result is cast
    /// to it, so COPY sends what the column holds).
    pub type_sql: String,
    pub strategy: Strategy,
    /// A text array masked element by element.
    #[serde(default)]
    pub elementwise: bool,
    /// Cut the text to this many characters (varchar(n) and char(n)).
    #[serde(default)]
    pub clamp: Option<usize>,
}

/// Checks a rule against its column: an ERROR message naming the column
/// when the rule cannot give a value of the column's type.
pub fn check(label: &str, c: &Column, strategy: &Strategy) -> Result<MaskedColumn, String> {
    let f = &c.type_facts;
    let refuse = |why: String| {
        Err(format!(
            "mask \"{}\" on column {label} ({}): {why}",
            strategy.name(),
            c.type_sql
        ))
    };
    if c.generated.is_some() {
        return refuse(
            "a generated column is computed on the target from the other columns; mask those"
                .into(),
        );
    }
    if *strategy == Strategy::Null && c.not_null {
        return refuse("the column is NOT NULL".into());
    }
    let mut out = MaskedColumn {
        column: c.name.clone(),
        type_sql: c.type_sql.clone(),
        strategy: strategy.clone(),
        elementwise: false,
        clamp: None,
    };
    if matches!(strategy, Strategy::Null | Strategy::Constant(_)) {
        // Both are checked by the source itself (see `constant_probe`).
        if let (Strategy::Constant(v), Holds::Text { max: Some(n) }) =
            (strategy, holds(&f.category, f.base_oid, f.typmod))
        {
            if v.chars().count() > n {
                return refuse(format!(
                    "the value has {} characters, the column holds {n}",
                    v.chars().count()
                ));
            }
        }
        return Ok(out);
    }
    let array = f.category == "A";
    let h = if array {
        holds(
            f.elem_category.as_deref().unwrap_or(""),
            f.elem_oid,
            f.typmod,
        )
    } else {
        holds(&f.category, f.base_oid, f.typmod)
    };
    match (&h, strategy) {
        (Holds::Text { max }, _) => {
            out.elementwise = array;
            if let Some(n) = *max {
                match strategy.fixed_len() {
                    Some(len) if len > n => {
                        return refuse(format!("it gives {len} characters, the column holds {n}"))
                    }
                    Some(_) => {}
                    None => out.clamp = Some(n),
                }
            }
            Ok(out)
        }
        (_, _) if array => refuse(
            "only arrays of text are masked element by element; use \"null\" or \"constant\""
                .into(),
        ),
        (Holds::Uuid, Strategy::Hash) => Ok(out),
        (Holds::Int { lo, hi }, Strategy::RandomInt { min, max }) => {
            if min < lo || max > hi {
                return refuse(format!(
                    "[{min}, {max}] does not fit the column's range [{lo}, {hi}]"
                ));
            }
            Ok(out)
        }
        (Holds::Numeric { digits }, Strategy::RandomInt { min, max }) => {
            let need = min.unsigned_abs().max(max.unsigned_abs()).to_string().len() as u32;
            match digits {
                Some(d) if need > *d => refuse(format!(
                    "values of {need} digits do not fit the column's {d} digits before the point"
                )),
                _ => Ok(out),
            }
        }
        (Holds::Uuid, _) => {
            refuse("a uuid column takes \"hash\" (a valid uuid), \"null\" or \"constant\"".into())
        }
        (Holds::Int { .. } | Holds::Numeric { .. }, _) => {
            refuse("a number column takes \"random_int\", \"null\" or \"constant\"".into())
        }
        (Holds::Other(what), _) => refuse(format!(
            "the column holds {what}, which this mask cannot give; use \"null\" or \"constant\""
        )),
    }
}

/// A statement the source runs before any data moves to check that a
/// constant (or a random_int's bounds) casts to the column's type, domain
/// checks included.
pub fn constant_probe(m: &MaskedColumn) -> Option<String> {
    match &m.strategy {
        Strategy::Constant(v) => Some(format!(
            "SELECT CAST({} AS {})",
            quote_literal(v),
            m.type_sql
        )),
        Strategy::RandomInt { min, max } if !m.elementwise => Some(format!(
            "SELECT CAST({min} AS {t}), CAST({max} AS {t})",
            t = m.type_sql
        )),
        _ => None,
    }
}

/// The secret of the keyed hash, as HMAC-SHA256 uses it: the key XORed with
/// the inner and outer pads. Made from a digest of the configured key (at
/// most 64 bytes, a SHA-256 block).
#[derive(Clone, PartialEq)]
pub struct MaskKey {
    inner: Vec<u8>,
    outer: Vec<u8>,
}

impl std::fmt::Debug for MaskKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MaskKey(..)")
    }
}

impl MaskKey {
    pub fn new(key: &[u8]) -> MaskKey {
        assert!(
            key.len() <= 64,
            "a HMAC-SHA256 key of over 64 bytes is hashed first"
        );
        let mut k = key.to_vec();
        k.resize(64, 0);
        MaskKey {
            inner: k.iter().map(|b| b ^ 0x36).collect(),
            outer: k.iter().map(|b| b ^ 0x5c).collect(),
        }
    }

    fn literal(bytes: &[u8]) -> String {
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        format!("'\\x{hex}'::bytea")
    }

    /// HMAC-SHA256 of the text `v`, first 16 bytes in hex (NULL stays NULL:
    /// every function on the way is strict).
    pub fn hash_sql(&self, v: &str) -> String {
        format!(
            "pg_catalog.encode(pg_catalog.substr(pg_catalog.sha256({} || pg_catalog.sha256({} || \
             pg_catalog.convert_to({v}, 'UTF8'))), 1, 16), 'hex')",
            Self::literal(&self.outer),
            Self::literal(&self.inner)
        )
    }
}

/// An integer drawn from [min, max]. In double precision while the span
/// is exact there (up to 2^53; numeric arithmetic costs a masked clone of
/// millions of rows seconds of the source's CPU), in numeric beyond.
fn random_int(min: i64, max: i64) -> String {
    let span = max as i128 - min as i128 + 1;
    if span <= 1 << 53 {
        format!("(({min})::int8 + pg_catalog.floor(pg_catalog.random() * {span}::float8)::int8)")
    } else {
        format!(
            "({min}::numeric + pg_catalog.floor(pg_catalog.random() * ({max}::numeric - {min}::numeric + 1)))::int8"
        )
    }
}

/// The mask of one text value `v` (a SQL expression of type text).
fn text_mask(s: &Strategy, v: &str, key: &MaskKey) -> String {
    match s {
        Strategy::Email => format!(
            "CASE WHEN {v} IS NULL THEN NULL WHEN pg_catalog.strpos({v}, '@') > 0 \
             THEN pg_catalog.left({v}, 1) || '***@' || pg_catalog.split_part({v}, '@', 2) ELSE '***' END"
        ),
        Strategy::Name => format!("CASE WHEN {v} IS NULL THEN NULL ELSE 'XXXX' END"),
        Strategy::Phone => format!(
            "CASE WHEN {v} IS NULL THEN NULL WHEN pg_catalog.length({v}) > 4 \
             THEN '***-' || pg_catalog.right({v}, 4) ELSE '****' END"
        ),
        Strategy::Partial { prefix, suffix } => format!(
            "CASE WHEN {v} IS NULL THEN NULL WHEN pg_catalog.length({v}) <= {keep} \
             THEN pg_catalog.repeat('*', pg_catalog.length({v})) \
             ELSE pg_catalog.left({v}, {prefix}) || '***' || pg_catalog.right({v}, {suffix}) END",
            keep = prefix + suffix
        ),
        Strategy::Hash => key.hash_sql(v),
        Strategy::Null => "NULL::text".into(),
        Strategy::RandomInt { min, max } => format!("{}::text", random_int(*min, *max)),
        Strategy::Constant(c) => quote_literal(c),
    }
}

/// The select-list item that stands for the column: its masked value, of
/// the column's type, under the column's name.
pub fn select_item(m: &MaskedColumn, key: &MaskKey) -> String {
    format!("{} AS {}", masked_value(m, key), quote_ident(&m.column))
}

/// The masked value of the column, of the column's type.
pub fn masked_value(m: &MaskedColumn, key: &MaskKey) -> String {
    let col = quote_ident(&m.column);
    let clamp = |e: String| match m.clamp {
        Some(n) => format!("pg_catalog.left({e}, {n})"),
        None => e,
    };
    let expr = match &m.strategy {
        Strategy::Null => "NULL".to_string(),
        // Cast once for the whole COPY (an InitPlan), not once a row: the
        // input functions of dates and times are not folded in planning.
        Strategy::Constant(c) => format!("SELECT CAST({} AS {})", quote_literal(c), m.type_sql),
        s if m.elementwise => format!(
            // One dimension only: unnest would flatten more, so more is an
            // error that names neither the values nor anything but the column.
            "CASE WHEN {col} IS NULL THEN NULL \
             WHEN pg_catalog.array_ndims({col}) > 1 THEN \
               ARRAY[(pg_catalog.array_ndims({col})::text || ' dimensions in column {name}: pgclone masks one-dimensional arrays only')::int4::text] \
             ELSE ARRAY(SELECT {e} FROM pg_catalog.unnest({col}) WITH ORDINALITY AS pgclone_u(v, n) ORDER BY pgclone_u.n) END",
            e = clamp(text_mask(s, "pgclone_u.v::text", key)),
            name = m.column.replace('\'', "''"),
        ),
        Strategy::RandomInt { min, max } => random_int(*min, *max),
        s => clamp(text_mask(s, &format!("{col}::text"), key)),
    };
    format!("({expr})::{}", m.type_sql)
}

/// Rules by source table, then column.
pub type Rules = HashMap<(String, String), BTreeMap<String, Strategy>>;

/// The rules of the `mask` option for the tables of a clone, by table and
/// column: keyed `"col"` on a table clone, `"table.col"` or
/// `"schema.table.col"` on schema and database clones.
pub fn rules_by_table(
    mask: &BTreeMap<String, MaskSpec>,
    tables: &[&TableDef],
    table_clone: bool,
) -> Result<Rules, String> {
    let mut out = Rules::new();
    // `{"table": {"col": ...}}`, as discover_sensitive() writes it, stands
    // for `{"table.col": ...}`.
    let mut flat: Vec<(String, MaskSpec)> = Vec::new();
    for (key, spec) in mask {
        match spec {
            MaskSpec::Detailed(m)
                if !table_clone && !key.contains('.') && !m.contains_key("type") =>
            {
                for (col, v) in m {
                    let spec: MaskSpec = serde_json::from_value(v.clone()).map_err(|_| {
                        format!("mask for \"{key}.{col}\": a strategy name or a rule object")
                    })?;
                    flat.push((format!("{key}.{col}"), spec));
                }
            }
            _ => flat.push((key.clone(), spec.clone())),
        }
    }
    for (key, spec) in &flat {
        let strategy = Strategy::parse(spec).map_err(|e| format!("mask for \"{key}\": {e}"))?;
        let parts: Vec<&str> = key.split('.').collect();
        let (schema, table, column) = match (table_clone, parts.as_slice()) {
            (true, [c]) => (None, None, *c),
            (false, [t, c]) => (None, Some(*t), *c),
            (false, [s, t, c]) => (Some(*s), Some(*t), *c),
            (true, _) => {
                return Err(format!(
                    "mask key \"{key}\": a table clone names columns alone (\"col\")"
                ))
            }
            (false, _) => {
                return Err(format!(
                    "mask key \"{key}\": name \"table.column\" or \"schema.table.column\""
                ))
            }
        };
        let found: Vec<&&TableDef> = tables
            .iter()
            .filter(|t| table.is_none_or(|n| t.name == n) && schema.is_none_or(|s| t.schema == s))
            .collect();
        let t = match found.as_slice() {
            [t] => t,
            [] => return Err(format!("mask key \"{key}\": no table of the clone is named so")),
            _ => {
                return Err(format!(
                    "mask key \"{key}\": tables of that name are in several schemas; name it \"schema.table.column\""
                ))
            }
        };
        if !t.columns.iter().any(|c| c.name == column) {
            return Err(format!(
                "mask key \"{key}\": table {}.{} has no column \"{column}\"",
                t.schema, t.name
            ));
        }
        let slot = out.entry((t.schema.clone(), t.name.clone())).or_default();
        if slot.insert(column.to_string(), strategy).is_some() {
            return Err(format!("mask key \"{key}\": the column has two rules"));
        }
    }
    Ok(out)
}

/// Keys stay keys: a masked column of a primary key or unique constraint
/// must keep its values apart (`hash`), and a masked column that a foreign
/// key joins gets the same deterministic mask on the other side (or the
/// clone is refused naming the key). Adds the rules that follow; `tables`
/// are the clone's, by (schema, name).
pub fn follow_keys(
    rules: &mut Rules,
    tables: &HashMap<(String, String), &TableDef>,
) -> Result<(), String> {
    let name_of = |t: &TableDef, n: i16| -> Option<String> {
        t.columns
            .iter()
            .find(|c| c.attnum == n)
            .map(|c| c.name.clone())
    };
    // Spread along foreign keys until nothing changes (a chain of keys).
    loop {
        let mut added: Vec<((String, String), String, Strategy)> = Vec::new();
        for t in tables.values() {
            for fk in t.constraints.iter().filter(|c| c.kind == "f") {
                let (Some(rs), Some(rt)) = (&fk.ref_schema, &fk.ref_table) else {
                    continue;
                };
                let referenced = tables.get(&(rs.clone(), rt.clone()));
                for (i, n) in fk.columns.iter().enumerate() {
                    let Some(col) = name_of(t, *n) else { continue };
                    let here = rules
                        .get(&(t.schema.clone(), t.name.clone()))
                        .and_then(|r| r.get(&col));
                    let there_col = fk
                        .ref_columns
                        .get(i)
                        .and_then(|rn| referenced.and_then(|r| name_of(r, *rn)));
                    let there = there_col
                        .as_ref()
                        .and_then(|c| rules.get(&(rs.clone(), rt.clone())).and_then(|r| r.get(c)));
                    let about = |c: &Constraint| {
                        format!("foreign key \"{}\" of {}.{}", c.name, t.schema, t.name)
                    };
                    match (here, there) {
                        (None, None) => {}
                        (Some(a), Some(b)) if a == b && a.keeps_keys() => {}
                        // NULL in a referencing column breaks no key.
                        (Some(Strategy::Null), None) => {}
                        (Some(a), Some(b)) => {
                            return Err(format!(
                                "{} joins {col} (mask \"{}\") to {rs}.{rt} (mask \"{}\"): both sides need the same \"hash\" mask",
                                about(fk), a.name(), b.name()
                            ))
                        }
                        (Some(s), None) | (None, Some(s)) if !s.keeps_keys() => {
                            return Err(format!(
                                "{} joins a column masked \"{}\": only \"hash\" keeps the joined values equal on both sides",
                                about(fk),
                                s.name()
                            ))
                        }
                        (Some(s), None) => match &there_col {
                            Some(c) => added.push(((rs.clone(), rt.clone()), c.clone(), s.clone())),
                            None => {
                                return Err(format!(
                                    "{} references {rs}.{rt}, which the clone does not take: its values cannot be masked the same way",
                                    about(fk)
                                ))
                            }
                        },
                        (None, Some(s)) => {
                            added.push(((t.schema.clone(), t.name.clone()), col.clone(), s.clone()))
                        }
                    }
                }
            }
        }
        if added.is_empty() {
            break;
        }
        for (table, col, s) in added {
            rules.entry(table).or_default().insert(col, s);
        }
    }
    // Primary keys and unique constraints keep their values apart.
    for ((schema, name), cols) in rules.iter() {
        let Some(t) = tables.get(&(schema.clone(), name.clone())) else {
            continue;
        };
        for k in t
            .constraints
            .iter()
            .filter(|c| matches!(c.kind.as_str(), "p" | "u"))
        {
            for n in &k.columns {
                let Some(col) = name_of(t, *n) else { continue };
                match cols.get(&col) {
                    Some(s) if !(s.keeps_keys() || k.kind == "u" && *s == Strategy::Null) => {
                        return Err(format!(
                            "column {schema}.{name}.{col} is in {} \"{}\": mask \"{}\" would repeat values; only \"hash\" keeps them apart",
                            if k.kind == "p" { "primary key" } else { "unique constraint" },
                            k.name,
                            s.name()
                        ))
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(())
}

/// The masked columns of each table of a clone, by (schema, name) on the
/// source.
pub type Masks = HashMap<(String, String), Vec<MaskedColumn>>;

/// Every rule of the `mask` option checked against the clone's tables, with
/// the rules that keys add; with `require`, a clone that would copy a column
/// `discover_sensitive` flags without a rule is refused, naming them.
pub fn plan(
    mask: Option<&BTreeMap<String, MaskSpec>>,
    require: bool,
    tables: &[TableDef],
    table_clone: bool,
) -> Result<Masks, String> {
    let refs: Vec<&TableDef> = tables.iter().collect();
    let empty = BTreeMap::new();
    let mut rules = rules_by_table(mask.unwrap_or(&empty), &refs, table_clone)?;
    let by_name: HashMap<(String, String), &TableDef> = tables
        .iter()
        .map(|t| ((t.schema.clone(), t.name.clone()), t))
        .collect();
    follow_keys(&mut rules, &by_name)?;
    if require {
        let mut bare: Vec<String> = Vec::new();
        for t in tables {
            let ruled = rules.get(&(t.schema.clone(), t.name.clone()));
            for c in t.columns.iter().filter(|c| c.generated.is_none()) {
                if ruled.is_some_and(|r| r.contains_key(&c.name)) {
                    continue;
                }
                if let Some(f) = crate::sensitive::classify(&c.name, &c.type_facts, c.not_null) {
                    bare.push(format!("{}.{}.{} ({})", t.schema, t.name, c.name, f.kind));
                }
            }
        }
        if !bare.is_empty() {
            return Err(format!(
                "\"require_masks\": these columns look sensitive and have no mask rule: {} \
                 (pgclone.discover_sensitive() proposes rules)",
                bare.join(", ")
            ));
        }
    }
    let mut out = Masks::new();
    for ((schema, name), cols) in rules {
        let t = by_name[&(schema.clone(), name.clone())];
        let mut list = Vec::with_capacity(cols.len());
        for (col, strategy) in cols {
            let c = t
                .columns
                .iter()
                .find(|c| c.name == col)
                .ok_or_else(|| format!("table {schema}.{name} has no column \"{col}\""))?;
            list.push(check(&format!("{schema}.{name}.{col}"), c, &strategy)?);
        }
        out.insert((schema, name), list);
    }
    Ok(out)
}

#[cfg(test)]
mod unit {
    use super::*;
    use crate::catalog::fixture::{column, constraint, table};

    fn spec(j: &str) -> MaskSpec {
        serde_json::from_str(j).unwrap()
    }

    #[test]
    fn rules_parse_with_their_parameters() {
        assert_eq!(Strategy::parse(&spec(r#""email""#)), Ok(Strategy::Email));
        assert_eq!(
            Strategy::parse(&spec(r#"{"type": "partial", "prefix": 2, "suffix": 3}"#)),
            Ok(Strategy::Partial {
                prefix: 2,
                suffix: 3
            })
        );
        assert_eq!(
            Strategy::parse(&spec(r#""partial""#)),
            Ok(Strategy::Partial {
                prefix: 1,
                suffix: 1
            })
        );
        assert_eq!(
            Strategy::parse(&spec(r#"{"type": "random_int", "min": 5, "max": 9}"#)),
            Ok(Strategy::RandomInt { min: 5, max: 9 })
        );
        assert_eq!(
            Strategy::parse(&spec(r#"{"type": "constant", "value": 42}"#)),
            Ok(Strategy::Constant("42".into()))
        );
        for (bad, says) in [
            (r#""mystery""#, "unknown mask"),
            (r#"{"prefix": 2}"#, "needs a \"type\""),
            (
                r#"{"type": "email", "domain": "x"}"#,
                "no parameter \"domain\"",
            ),
            (r#"{"type": "random_int", "min": 9, "max": 5}"#, "above"),
            (r#"{"type": "partial", "prefix": -1}"#, "from 0 to"),
            (r#"{"type": "constant"}"#, "needs a \"value\""),
            (r#"{"type": "constant", "value": null}"#, "\"null\" mask"),
            (
                r#"{"type": "random_int", "min": "a"}"#,
                "must be an integer",
            ),
        ] {
            let e = Strategy::parse(&spec(bad)).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    fn col(name: &str, type_sql: &str, category: &str, oid: u32, typmod: i32) -> Column {
        let mut c = column(2, name, type_sql);
        c.type_facts = TypeFacts {
            category: category.into(),
            base_oid: oid,
            typmod,
            ..TypeFacts::default()
        };
        c
    }

    #[test]
    fn a_rule_must_give_a_value_of_the_columns_type() {
        let text = col("e", "text", "S", 25, -1);
        let v10 = col("v", "character varying(10)", "S", VARCHAR, 14);
        let int2 = col("n", "smallint", "N", INT2, -1);
        let num = col("m", "numeric(5,2)", "N", NUMERIC, ((5 << 16) | 2) + 4);
        let uuid = col("u", "uuid", "U", UUID, -1);
        let date = col("d", "date", "D", 1082, -1);
        let ok = |c: &Column, s: Strategy| check("t.x", c, &s);
        assert!(ok(&text, Strategy::Email).is_ok());
        assert_eq!(ok(&v10, Strategy::Email).unwrap().clamp, Some(10));
        assert!(ok(&v10, Strategy::Hash)
            .unwrap_err()
            .contains("32 characters"));
        assert!(ok(&v10, Strategy::Name).is_ok());
        assert!(ok(&int2, Strategy::Email)
            .unwrap_err()
            .contains("random_int"));
        assert!(ok(&int2, Strategy::RandomInt { min: 0, max: 40000 })
            .unwrap_err()
            .contains("does not fit"));
        assert!(ok(&int2, Strategy::RandomInt { min: 0, max: 30000 }).is_ok());
        assert!(ok(&num, Strategy::RandomInt { min: 0, max: 999 }).is_ok());
        assert!(ok(&num, Strategy::RandomInt { min: 0, max: 1000 })
            .unwrap_err()
            .contains("3 digits"));
        assert!(ok(&uuid, Strategy::Hash).is_ok());
        assert!(ok(&uuid, Strategy::Email).is_err());
        assert!(ok(&date, Strategy::RandomInt { min: 0, max: 9 })
            .unwrap_err()
            .contains("date"));
        assert!(ok(&date, Strategy::Constant("2000-01-01".into())).is_ok());
        let mut nn = text.clone();
        nn.not_null = true;
        assert!(ok(&nn, Strategy::Null).unwrap_err().contains("NOT NULL"));
        let mut arr = col("tags", "text[]", "A", 1009, -1);
        arr.type_facts.elem_category = Some("S".into());
        arr.type_facts.elem_oid = 25;
        assert!(ok(&arr, Strategy::Hash).unwrap().elementwise);
        let mut ints = arr.clone();
        ints.type_facts.elem_category = Some("N".into());
        ints.type_facts.elem_oid = INT4;
        assert!(ok(&ints, Strategy::Hash)
            .unwrap_err()
            .contains("arrays of text"));
    }

    #[test]
    fn the_hash_is_a_keyed_hmac() {
        let k = MaskKey::new(b"Jefe");
        let sql = k.hash_sql("'x'");
        // "Jefe" XOR 0x36 then 0x36 padding; XOR 0x5c then 0x5c padding.
        assert!(
            sql.contains(&format!("'\\x7c535053{}'::bytea", "36".repeat(60))),
            "{sql}"
        );
        assert!(
            sql.contains(&format!("'\\x16393a39{}'::bytea", "5c".repeat(60))),
            "{sql}"
        );
        assert!(
            format!("{k:?}") == "MaskKey(..)",
            "the key never shows in a debug print"
        );
    }

    #[test]
    fn random_ints_stay_exact() {
        assert_eq!(
            random_int(-5, 5),
            "((-5)::int8 + pg_catalog.floor(pg_catalog.random() * 11::float8)::int8)"
        );
        assert!(random_int(i64::MIN, i64::MAX).contains("::numeric"));
    }

    #[test]
    fn select_items_cast_to_the_column_type() {
        let k = MaskKey::new(b"k");
        let m = MaskedColumn {
            column: "Mail".into(),
            type_sql: "character varying(10)".into(),
            strategy: Strategy::Email,
            elementwise: false,
            clamp: Some(10),
        };
        let s = select_item(&m, &k);
        assert!(
            s.starts_with("(pg_catalog.left(CASE WHEN \"Mail\"::text IS NULL"),
            "{s}"
        );
        assert!(
            s.ends_with(", 10))::character varying(10) AS \"Mail\""),
            "{s}"
        );
        let c = MaskedColumn {
            strategy: Strategy::Constant("it's".into()),
            clamp: None,
            ..m.clone()
        };
        assert_eq!(
            select_item(&c, &k),
            "(SELECT CAST('it''s' AS character varying(10)))::character varying(10) AS \"Mail\""
        );
        assert_eq!(
            constant_probe(&c).unwrap(),
            "SELECT CAST('it''s' AS character varying(10))"
        );
    }

    fn keyed() -> (TableDef, TableDef) {
        let mut parent = table("s", "users");
        parent.columns = vec![column(1, "id", "integer"), column(2, "email", "text")];
        parent.constraints = vec![constraint("users_email_key", "u", vec![2])];
        let mut child = table("s", "orders");
        child.columns = vec![column(1, "id", "integer"), column(2, "buyer", "text")];
        child.constraints = vec![Constraint {
            ref_columns: vec![2],
            ref_schema: Some("s".into()),
            ref_table: Some("users".into()),
            ..constraint("orders_buyer_fkey", "f", vec![2])
        }];
        (parent, child)
    }

    #[test]
    fn rules_are_keyed_by_table_and_column() {
        let (p, c) = keyed();
        let mask: BTreeMap<String, MaskSpec> =
            serde_json::from_str(r#"{"users.email": "hash", "s.orders.id": "null"}"#).unwrap();
        let r = rules_by_table(&mask, &[&p, &c], false).unwrap();
        assert_eq!(r[&("s".into(), "users".into())]["email"], Strategy::Hash);
        let bad: BTreeMap<String, MaskSpec> =
            serde_json::from_str(r#"{"users.nope": "hash"}"#).unwrap();
        assert!(rules_by_table(&bad, &[&p, &c], false)
            .unwrap_err()
            .contains("no column \"nope\""));
        let nested: BTreeMap<String, MaskSpec> = serde_json::from_str(
            r#"{"users": {"email": "hash"}, "orders": {"id": {"type": "null"}}}"#,
        )
        .unwrap();
        let r = rules_by_table(&nested, &[&p, &c], false).unwrap();
        assert_eq!(r[&("s".into(), "users".into())]["email"], Strategy::Hash);
        assert_eq!(r[&("s".into(), "orders".into())]["id"], Strategy::Null);
        let one: BTreeMap<String, MaskSpec> = serde_json::from_str(r#"{"email": "hash"}"#).unwrap();
        assert!(rules_by_table(&one, &[&p], true).is_ok());
        assert!(rules_by_table(&one, &[&p], false).is_err());
    }

    #[test]
    fn a_masked_join_column_takes_the_same_hash_on_both_sides() {
        let (p, c) = keyed();
        let tables: HashMap<(String, String), &TableDef> = [
            (("s".to_string(), "users".to_string()), &p),
            (("s".to_string(), "orders".to_string()), &c),
        ]
        .into_iter()
        .collect();
        let mut rules = HashMap::new();
        rules.insert(
            ("s".to_string(), "users".to_string()),
            BTreeMap::from([("email".to_string(), Strategy::Hash)]),
        );
        follow_keys(&mut rules, &tables).unwrap();
        assert_eq!(
            rules[&("s".into(), "orders".into())]["buyer"],
            Strategy::Hash
        );
        // Not a hash: refused, naming the key.
        let mut rules = HashMap::new();
        rules.insert(
            ("s".to_string(), "orders".to_string()),
            BTreeMap::from([("buyer".to_string(), Strategy::Name)]),
        );
        let e = follow_keys(&mut rules, &tables).unwrap_err();
        assert!(e.contains("orders_buyer_fkey"), "{e}");
        // A unique column keeps its values apart.
        let mut rules = HashMap::new();
        rules.insert(
            ("s".to_string(), "users".to_string()),
            BTreeMap::from([("email".to_string(), Strategy::Constant("x".into()))]),
        );
        let e = follow_keys(&mut rules, &tables).unwrap_err();
        assert!(
            e.contains("users_email_key") || e.contains("orders_buyer_fkey"),
            "{e}"
        );
    }
}
