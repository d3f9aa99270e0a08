use crate::projects::ProjectView;
use crate::sql::SqlValue;

/// Which history: of the whole project, of a type, or of one resource.
#[derive(Debug, Clone)]
pub enum HistoryScope {
    System,
    Type(String),
    Instance(String, String),
}

/// A position in a history listing, newest first: the next page starts strictly after it. Keyset
/// paging keeps pages stable while new versions are written.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryCursor {
    pub last_updated: i64,
    pub version_id: String,
}

#[derive(Debug, Clone)]
pub struct HistoryQuery {
    pub project: String,
    /// The projects beyond `project` whose history a type or system history shows.
    pub view: ProjectView,
    pub scope: HistoryScope,
    /// Only versions at or after this instant (`_since`), microseconds.
    pub since: Option<i64>,
    pub after: Option<HistoryCursor>,
    pub count: usize,
}

impl HistoryQuery {
    pub(crate) fn to_sql(&self, dialect: crate::schema::Dialect) -> (String, Vec<SqlValue>) {
        let mut params = Vec::new();
        let mut sql = format!(
            "SELECT {} FROM resource_history r WHERE ",
            crate::schema::RESOURCE_COLUMNS
        );
        match &self.scope {
            HistoryScope::Instance(t, id) => {
                // An instance's history is not filtered by project here: the caller has already
                // checked the current version's project, and the history of one resource never
                // changes project.
                params.push(SqlValue::Text(t.clone()));
                params.push(SqlValue::Text(id.clone()));
                sql.push_str(&format!(
                    "r.resource_type = {} AND r.id = {}",
                    dialect.param(1),
                    dialect.param(2)
                ));
            }
            HistoryScope::Type(t) => {
                params.push(SqlValue::Text(t.clone()));
                sql.push_str(&format!("r.resource_type = {}", dialect.param(1)));
                self.projects(dialect, Some(t), &mut sql, &mut params);
            }
            HistoryScope::System => {
                sql.push_str("TRUE");
                self.projects(dialect, None, &mut sql, &mut params);
            }
        }
        if let Some(since) = self.since {
            params.push(SqlValue::Int(since));
            sql.push_str(&format!(
                " AND r.last_updated >= {}",
                dialect.param(params.len())
            ));
        }
        if let Some(after) = &self.after {
            params.push(SqlValue::Int(after.last_updated));
            let lu = dialect.param(params.len());
            params.push(SqlValue::Text(after.version_id.clone()));
            let v = dialect.param(params.len());
            sql.push_str(&format!(
                " AND (r.last_updated < {lu} OR (r.last_updated = {lu} AND r.version_id < {v}))"
            ));
        }
        sql.push_str(&format!(
            " ORDER BY r.last_updated DESC, r.version_id DESC LIMIT {}",
            self.count
        ));
        (sql, params)
    }

    /// ` AND` the projects of the view, for the history of `resource_type` (`None`: every type).
    fn projects(
        &self,
        dialect: crate::schema::Dialect,
        resource_type: Option<&str>,
        sql: &mut String,
        params: &mut Vec<SqlValue>,
    ) {
        let Some(others) = self.view.others() else {
            return;
        };
        let mut ids = vec![self.project.as_str()];
        let mut limited = Vec::new();
        for (id, types) in others {
            match (types, resource_type) {
                (None, _) => ids.push(id),
                (Some(types), Some(t)) => {
                    if types.iter().any(|x| x == t) {
                        ids.push(id);
                    }
                }
                (Some(types), None) => {
                    ids.push(id);
                    limited.push((id, types));
                }
            }
        }
        let mut list = Vec::with_capacity(ids.len());
        for id in ids {
            params.push(SqlValue::Text(id.to_owned()));
            list.push(dialect.param(params.len()));
        }
        sql.push_str(&format!(" AND r.project IN ({})", list.join(", ")));
        for (id, types) in limited {
            params.push(SqlValue::Text(id.to_owned()));
            let p = dialect.param(params.len());
            let mut names = Vec::with_capacity(types.len());
            for t in types {
                params.push(SqlValue::Text(t));
                names.push(dialect.param(params.len()));
            }
            sql.push_str(&format!(
                " AND (r.project <> {p} OR r.resource_type IN ({}))",
                names.join(", ")
            ));
        }
    }
}
