//! Predicates ([`Pred`]) as SQL.
//!
//! A set of rows is written either as `row.rid IN (SELECT ...)`, read whole and then looked up
//! by key (it *drives* the statement), or as `EXISTS (SELECT ... WHERE ... = row.rid)`, one
//! indexed probe per candidate row (a *check*). Negations are always `NOT EXISTS` (an anti-join
//! on PostgreSQL, where `NOT IN` cannot be one).
//!
//! PostgreSQL turns both forms into semi-joins and orders them by its statistics, so every
//! positive set of a conjunction is written `IN`. SQLite reads every `IN` subquery whole (into a
//! temporary index) unless it drives, so there at most one set per conjunction drives, the one
//! guessed most selective ([`Pred::rank`]), and the others are checks; when none is selective
//! enough, or `_id` is given, nothing drives and the type's rows are read in index order.
//! Checks on SQLite probe the index table by `rid` (`INDEXED BY <table>_rid`: a resource's own
//! rows) unless the condition fixes the whole lookup key.

use super::compile::{DRIVER_RANK, ID_RANK, Pred, Set};
use crate::schema::{self, Dialect, INDEX_TABLES};
use crate::token_signature;

/// The table whose rows carry their resource's token signature.
const REFERENCE_TABLE: &str = INDEX_TABLES[schema::REFERENCE].name;

/// `{ck}` in an index condition marks a term that narrows the rows of a lookup without being
/// worth a seek of its own when the set is checked row by row (a list of values: SQLite would
/// seek once per value, inside every check). Driving, it is an ordinary term.
pub(crate) const CHECK_FILTER: &str = "{ck}";

fn driving(cond: &str, alias: &str) -> String {
    cond.replace("{i}", alias).replace(CHECK_FILTER, "")
}

/// On SQLite the marked terms get a unary `+`, which keeps them out of the index lookup: the
/// check seeks by `rid` and the other key columns and filters the resource's few rows.
fn checking(cond: &str, alias: &str, sqlite: bool) -> String {
    cond.replace("{i}", alias)
        .replace(CHECK_FILTER, if sqlite { "+" } else { "" })
}

/// The conjuncts of `pred` (none for `true`).
fn conjuncts(pred: &Pred) -> Vec<&Pred> {
    match pred {
        Pred::And(all) => all.iter().collect(),
        Pred::Const(true) => Vec::new(),
        p => vec![p],
    }
}

/// The placeholders of the token signature masks of the positive token sets among `items`: a
/// resource that satisfies all of `items` has every bit of each (see `token_signature`).
fn signatures<'a>(items: &[&'a Pred]) -> Vec<&'a str> {
    items
        .iter()
        .filter_map(|p| match p {
            Pred::Set {
                set: Set::Index {
                    signature: Some(s), ..
                },
                negated: false,
            } => Some(s.as_str()),
            _ => None,
        })
        .collect()
}

/// ` AND <filter>` for each mask, on the reference rows aliased `row`: rows of resources that
/// lack a code the conjunction asks for are dropped while the index is read, before any probe.
fn signature_filters(row: &str, masks: &[&str]) -> String {
    masks
        .iter()
        .map(|p| format!(" AND {}", token_signature::filter(row, p)))
        .collect()
}

/// See [`Render::ordered_driver`].
pub(crate) struct OrderedDriver {
    pub(crate) table: &'static str,
    /// ` CROSS JOIN <table> <alias>` for each check joined after `d` (SQLite), whose
    /// conditions are in `early`.
    pub(crate) joins: String,
    /// On the driving index rows `d`.
    pub(crate) cond: String,
    /// Checks on `d.rid`.
    pub(crate) early: String,
    /// Checks on the resource row `r`.
    pub(crate) late: String,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// A top-level conjunction: a set may drive.
    Drive,
    /// Inside a correlated check: the correlation drives, everything else is checked.
    Check,
}

pub(crate) struct Render {
    dialect: Dialect,
    project: String,
    aliases: usize,
    /// On PostgreSQL, write checks as `EXISTS (... OFFSET 0)`: the fence keeps the planner from
    /// turning them into joins, so that each stays one indexed probe per row whatever plan
    /// (generic or custom) runs the statement.
    fenced: bool,
}

impl Render {
    pub(crate) fn new(dialect: Dialect, project: &str) -> Render {
        Render {
            dialect,
            project: project.to_owned(),
            aliases: 0,
            fenced: false,
        }
    }

    fn alias(&mut self, prefix: &str) -> String {
        self.aliases += 1;
        format!("{prefix}{}", self.aliases)
    }

    /// `pred` on the row aliased `row`, as the WHERE of its statement; also whether a set
    /// drives it (on SQLite, which then reads that set first).
    pub(crate) fn conjunction(&mut self, pred: &Pred, row: &str, mode: Mode) -> (String, bool) {
        let items = conjuncts(pred);
        if items.is_empty() {
            return ("1 = 1".into(), false);
        }
        let driver = self.driver(&items, mode);
        (self.conjuncts(&items, driver, row, mode), driver.is_some())
    }

    /// When the set that drives `pred` (on the row `r`) selects its index rows by one value of
    /// every lookup key column, those rows are in `rid` order: a page in `rid` order can then
    /// read them as a join, stopping at the page's end, instead of reading the whole set first
    /// (a common value of an unselective parameter is thousands of rows). The driving index
    /// rows are aliased `d`; returns their table, their condition, and the rest of `pred` (all
    /// checks), split into the checks that need only `rid`, written on `d` so that they run
    /// before the resource row is looked up, and the others, on `r`. On PostgreSQL the checks
    /// are fenced (see [`Render::fenced`]): the statement's shape then fixes its plan, which
    /// is what lets it be prepared once and run with a generic plan.
    pub(crate) fn ordered_driver(&mut self, pred: &Pred) -> Option<OrderedDriver> {
        let items = conjuncts(pred);
        let driver = self.pick_driver(&items)?;
        self.fenced = self.dialect == Dialect::Postgres;
        let Pred::Set {
            set:
                Set::Index {
                    table,
                    cond,
                    ordered: true,
                    ..
                },
            ..
        } = items[driver]
        else {
            return None;
        };
        let (early, late): (Vec<&Pred>, Vec<&Pred>) = items
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != driver)
            .map(|(_, p)| *p)
            .partition(|p| matches!(p, Pred::Set { set, .. } if set.keyed_by_rid()));
        let postgres = self.dialect == Dialect::Postgres;
        // On SQLite a check that is one seek (every key column fixed by one equality) is
        // joined rather than written as `EXISTS`: the statement's `GROUP BY d.rid` already
        // keeps one row per resource, and a correlated subquery opens and closes its cursor
        // for every driving row (a tenth of the time of `subject=X&code=Y`, whose hundred
        // driving rows each take one probe).
        let (joined, early): (Vec<&Pred>, Vec<&Pred>) = early.into_iter().partition(|p| {
            !postgres
                && matches!(
                    p,
                    Pred::Set {
                        set: Set::Index { ordered: true, .. },
                        negated: false,
                    }
                )
        });
        let mut joins = String::new();
        let mut joined_conds = Vec::with_capacity(joined.len());
        // The other checks are written on the last joined row (the same `rid`), so that SQLite
        // runs them after the joined ones, in the order written, not on every driving row.
        let mut early_row = "d".to_owned();
        for p in joined {
            if let Pred::Set {
                set: Set::Index { table, cond, .. },
                ..
            } = p
            {
                let j = self.alias("j");
                joins.push_str(&format!(" CROSS JOIN {table} {j}"));
                joined_conds.push(format!("{} AND {j}.rid = d.rid", checking(cond, &j, true)));
                early_row = j;
            }
        }
        let mut checks = |preds: &[&Pred], row: &str| {
            if preds.is_empty() {
                return "1 = 1".to_owned();
            }
            if !postgres || preds.len() == 1 {
                return self.conjuncts(preds, None, row, Mode::Check);
            }
            // In the order written (the caller's conditions, then a policy's view): PostgreSQL
            // would order them by its cost guesses, and a policy's list of compartments, which
            // nearly every row passes, would then be checked for every row the search's own
            // conditions reject.
            let parts: Vec<String> = preds
                .iter()
                .map(|p| self.conjuncts(&[*p], None, row, Mode::Check))
                .collect();
            let mut sql = parts[parts.len() - 1].clone();
            for part in parts[..parts.len() - 1].iter().rev() {
                sql = format!("CASE WHEN {part} THEN {sql} ELSE FALSE END");
            }
            sql
        };
        let mut early = checks(&early, &early_row);
        if !joined_conds.is_empty() {
            joined_conds.push(early);
            early = joined_conds.join(" AND ");
        }
        let late = checks(&late, "r");
        self.fenced = false;
        let mut cond = driving(cond, "d");
        if *table == REFERENCE_TABLE {
            cond.push_str(&signature_filters("d", &signatures(&items)));
        }
        Some(OrderedDriver {
            table,
            joins,
            cond,
            early,
            late,
        })
    }

    /// Which conjunct drives: on SQLite in `Drive` mode, the most selective positive set (by
    /// rank, then by position), unless `_id` is given or none is selective enough.
    fn driver(&self, items: &[&Pred], mode: Mode) -> Option<usize> {
        if self.dialect != Dialect::Sqlite || mode != Mode::Drive {
            return None;
        }
        self.pick_driver(items)
    }

    /// The most selective positive set by rank, then by position, unless `_id` is given or
    /// none is selective enough.
    fn pick_driver(&self, items: &[&Pred]) -> Option<usize> {
        let by_id = items
            .iter()
            .any(|p| matches!(p, Pred::Row { rank, .. } if *rank >= ID_RANK));
        if by_id {
            return None;
        }
        items
            .iter()
            .enumerate()
            .filter_map(|(i, p)| match p {
                Pred::Set {
                    set,
                    negated: false,
                } if set.rank() >= DRIVER_RANK => Some((i, set.rank())),
                _ => None,
            })
            .min_by_key(|(i, rank)| (u8::MAX - rank, *i))
            .map(|(i, _)| i)
    }

    fn conjuncts(
        &mut self,
        items: &[&Pred],
        driver: Option<usize>,
        row: &str,
        mode: Mode,
    ) -> String {
        let mut parts = Vec::with_capacity(items.len());
        let masks = signatures(items);
        for (i, item) in items.iter().enumerate() {
            let sql = match item {
                Pred::Set {
                    set,
                    negated: false,
                } if Some(i) == driver
                    || (self.dialect == Dialect::Postgres && mode == Mode::Drive) =>
                {
                    format!("{row}.rid IN ({})", self.select_filtered(set, &masks))
                }
                p => self.expr(p, row),
            };
            parts.push(sql);
        }
        parts.join(" AND ")
    }

    /// `pred` where it is not a conjunct of the statement (inside OR, NOT): sets are checks.
    fn expr(&mut self, pred: &Pred, row: &str) -> String {
        match pred {
            Pred::Const(true) => "1 = 1".into(),
            Pred::Const(false) => "1 = 0".into(),
            Pred::Row { sql, .. } => format!("({})", sql.replace("{a}", row)),
            Pred::Set { set, negated } => {
                let exists = self.exists(set, row);
                if *negated {
                    format!("NOT {exists}")
                } else {
                    exists
                }
            }
            Pred::And(all) => {
                let parts: Vec<String> = all.iter().map(|p| self.expr(p, row)).collect();
                format!("({})", parts.join(" AND "))
            }
            Pred::Or(any) => {
                let parts: Vec<String> = any.iter().map(|p| self.expr(p, row)).collect();
                format!("({})", parts.join(" OR "))
            }
        }
    }

    /// [`Render::select`], with the token signature `masks` of the rest of the conjunction
    /// applied to reference rows, which are all rows of the same resources.
    fn select_filtered(&mut self, set: &Set, masks: &[&str]) -> String {
        match set {
            Set::Index { table, cond, .. } if *table == REFERENCE_TABLE && !masks.is_empty() => {
                let i = self.alias("i");
                format!(
                    "SELECT {i}.rid FROM {table} {i} WHERE {}{}",
                    driving(cond, &i),
                    signature_filters(&i, masks)
                )
            }
            Set::Union(sets) => {
                let parts: Vec<String> = sets
                    .iter()
                    .map(|s| self.select_filtered(s, masks))
                    .collect();
                parts.join(" UNION ALL ")
            }
            _ => self.select(set),
        }
    }

    /// `SELECT <rid> FROM ... WHERE ...`: the set, uncorrelated.
    pub(crate) fn select(&mut self, set: &Set) -> String {
        let sqlite = self.dialect == Dialect::Sqlite;
        match set {
            Set::Index { table, cond, .. } => {
                let i = self.alias("i");
                format!(
                    "SELECT {i}.rid FROM {table} {i} WHERE {}",
                    driving(cond, &i)
                )
            }
            Set::Chain { cond, target, .. } => {
                let (i, t) = (self.alias("i"), self.alias("t"));
                let cond = cond.replace("{i}", &i);
                let (target, driven) = self.conjunction(target, &t, Mode::Drive);
                let join =
                    format!("{t}.resource_type = {i}.target_type AND {t}.id = {i}.target_id");
                if sqlite && driven {
                    // The target rows first, then their referrers by the lookup key.
                    format!(
                        "SELECT {i}.rid FROM resources {t} CROSS JOIN reference_idx {i} WHERE {target} AND {cond} AND {join}"
                    )
                } else if sqlite {
                    format!(
                        "SELECT {i}.rid FROM reference_idx {i} CROSS JOIN resources {t} WHERE {cond} AND {join} AND {target}"
                    )
                } else {
                    format!(
                        "SELECT {i}.rid FROM reference_idx {i} JOIN resources {t} ON {join} WHERE {cond} AND {target}"
                    )
                }
            }
            Set::Has { cond, source, .. } => {
                let (i, s, x) = (self.alias("i"), self.alias("s"), self.alias("x"));
                let cond = cond.replace("{i}", &i);
                let (source, driven) = self.conjunction(source, &s, Mode::Drive);
                let target =
                    format!("{x}.resource_type = {i}.target_type AND {x}.id = {i}.target_id");
                if sqlite && driven {
                    // The sources first, then their reference rows by `rid`.
                    format!(
                        "SELECT {x}.rid FROM resources {s} CROSS JOIN reference_idx {i} INDEXED BY reference_idx_rid CROSS JOIN resources {x} WHERE {source} AND {i}.rid = {s}.rid AND {cond} AND {target}"
                    )
                } else if sqlite {
                    format!(
                        "SELECT {x}.rid FROM reference_idx {i} CROSS JOIN resources {s} CROSS JOIN resources {x} WHERE {cond} AND {s}.rid = {i}.rid AND {source} AND {target}"
                    )
                } else {
                    format!(
                        "SELECT {x}.rid FROM reference_idx {i} JOIN resources {s} ON {s}.rid = {i}.rid JOIN resources {x} ON {target} WHERE {cond} AND {source}"
                    )
                }
            }
            Set::Rows(pred) => {
                let x = self.alias("x");
                let (sql, _) = self.conjunction(pred, &x, Mode::Drive);
                format!(
                    "SELECT {x}.rid FROM resources {x} WHERE {x}.project_key {} AND {sql}",
                    self.project
                )
            }
            Set::Union(sets) => {
                let parts: Vec<String> = sets.iter().map(|s| self.select(s)).collect();
                parts.join(" UNION ALL ")
            }
        }
    }

    fn fence(&self) -> &'static str {
        if self.fenced { " OFFSET 0" } else { "" }
    }

    /// `EXISTS (...)`: whether the row `row` is in the set, probed by its key.
    fn exists(&mut self, set: &Set, row: &str) -> String {
        let sqlite = self.dialect == Dialect::Sqlite;
        match set {
            Set::Index {
                table, cond, point, ..
            } => {
                let i = self.alias("i");
                if self.fenced && *point {
                    // PostgreSQL, generic plan, one value for every key column: the resource's
                    // few rows by `rid`, then the condition on them. Left to itself the planner
                    // probes the wide lookup index with every key column for each row checked,
                    // about twice the work. (A list of values it already checks well.)
                    let x = self.alias("x");
                    return format!(
                        "EXISTS (SELECT 1 FROM (SELECT * FROM {table} {x} WHERE {x}.rid = {row}.rid OFFSET 0) {i} WHERE {})",
                        checking(cond, &i, sqlite)
                    );
                }
                let hint = if sqlite && !point {
                    format!(" INDEXED BY {table}_rid")
                } else {
                    String::new()
                };
                format!(
                    "EXISTS (SELECT 1 FROM {table} {i}{hint} WHERE {} AND {i}.rid = {row}.rid{})",
                    checking(cond, &i, sqlite),
                    self.fence()
                )
            }
            Set::Chain { cond, target, .. } => {
                let (i, t) = (self.alias("i"), self.alias("t"));
                let hint = if sqlite {
                    " INDEXED BY reference_idx_rid"
                } else {
                    ""
                };
                let cond = cond.replace("{i}", &i);
                let (target, _) = self.conjunction(target, &t, Mode::Check);
                format!(
                    "EXISTS (SELECT 1 FROM reference_idx {i}{hint} CROSS JOIN resources {t} WHERE {i}.rid = {row}.rid AND {cond} AND {t}.resource_type = {i}.target_type AND {t}.id = {i}.target_id AND {target}{})",
                    self.fence()
                )
            }
            Set::Has { cond, source, .. } => {
                let (i, s) = (self.alias("i"), self.alias("s"));
                let cond = cond.replace("{i}", &i);
                let (source, _) = self.conjunction(source, &s, Mode::Check);
                format!(
                    "EXISTS (SELECT 1 FROM reference_idx {i} CROSS JOIN resources {s} WHERE {cond} AND {i}.target_id = {row}.id AND {i}.target_type = {row}.resource_type AND {s}.rid = {i}.rid AND {source}{})",
                    self.fence()
                )
            }
            Set::Rows(pred) => self.expr(pred, row),
            Set::Union(sets) => {
                let parts: Vec<String> = sets.iter().map(|s| self.exists(s, row)).collect();
                format!("({})", parts.join(" OR "))
            }
        }
    }
}
