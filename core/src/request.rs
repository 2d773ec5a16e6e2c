//! What a clone was asked to do, as a job keeps it (so `resume` can ask
//! again): everything but the conninfo. Pure.

use crate::error::Result;
use crate::options::{Options, Scope};
use crate::plan::assemble::What;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Spec {
    pub what: What,
    pub schema: Option<String>,
    pub table: Option<String>,
    /// A table clone's name on the target (None: the same name).
    pub target_table: Option<String>,
    pub include_data: bool,
    pub options: Options,
    /// Workers of a job (1: the serial path, or a job of one worker).
    pub workers: u32,
    pub resumed_from: Option<i32>,
}

impl Spec {
    /// The scope its options are checked against.
    pub fn scope(&self) -> Scope {
        match self.what {
            What::Table => Scope::Table,
            What::Database => Scope::Database,
            _ => Scope::Schema,
        }
    }

    pub fn check(&self) -> Result<()> {
        self.options.check_scope(self.scope())
    }

    /// The name a job shows in `table_name`.
    pub fn shown_table(&self) -> Option<String> {
        self.target_table.clone().or_else(|| self.table.clone())
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn specs_round_trip() {
        let s = Spec {
            what: What::Schema,
            schema: Some("sales".into()),
            table: None,
            target_table: None,
            include_data: true,
            options: Options::parse(Some(r#"{"parallel": 2}"#)).unwrap(),
            workers: 2,
            resumed_from: Some(3),
        };
        let back: Spec = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.scope(), Scope::Schema);
    }
}
