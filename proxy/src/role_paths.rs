//! The `search_path` a session starts with when its startup packet sets none: what `ALTER ROLE …
//! SET search_path`, `ALTER ROLE … IN DATABASE … SET` or `ALTER DATABASE … SET` gave its role in
//! the migrated database, else the server's own default — with `"$user"` standing for the role's
//! schema only when one of that name exists, as PostgreSQL resolves it.
//!
//! The startup packet does not carry these settings, so duet reads them from the catalog (each
//! heartbeat, and before serving its first client) and a session takes the value current when it
//! starts (a role's new setting, like PostgreSQL's, applies to sessions started after it).
//! Unknown means "not sure": such a session's unqualified names are not trusted to mean a
//! migrating table, and the safety net mirrors its writes instead.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arc_swap::ArcSwap;
use duet_shadow::rewrite::search_path::{from_startup, SearchPath};

/// What the catalog says, as last read.
#[derive(Debug, Default)]
struct Snapshot {
    /// Per role: its own `search_path` setting (in this database, or everywhere).
    roles: HashMap<String, String>,
    /// The database's setting, or the server's default; `None` when neither is known.
    fallback: Option<String>,
    /// Every schema of the database (for `"$user"`).
    schemas: HashSet<String>,
    /// Whether the catalog was read at all.
    loaded: bool,
}

/// The default `search_path` of each role in the migrated database.
#[derive(Debug, Default)]
pub struct RolePaths {
    snapshot: ArcSwap<Snapshot>,
}

impl RolePaths {
    /// Nothing read yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads the settings again (on a connection to the migrated database).
    pub async fn refresh(
        &self,
        client: &tokio_postgres::Client,
    ) -> Result<(), tokio_postgres::Error> {
        let rows = client
            .query(
                "SELECT coalesce(r.rolname, ''), s.setdatabase <> 0, cfg
                 FROM pg_catalog.pg_db_role_setting s
                 LEFT JOIN pg_catalog.pg_roles r ON r.oid = s.setrole
                 CROSS JOIN LATERAL unnest(s.setconfig) AS cfg
                 WHERE (s.setdatabase = 0 OR s.setdatabase =
                        (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database()))
                   AND cfg LIKE 'search\\_path=%'",
                &[],
            )
            .await?;
        let mut roles: HashMap<String, (bool, String)> = HashMap::new();
        let mut database = None;
        for row in rows {
            let role: String = row.get(0);
            let in_database: bool = row.get(1);
            let value = row
                .get::<_, String>(2)
                .trim_start_matches("search_path=")
                .to_owned();
            if role.is_empty() {
                // `ALTER DATABASE … SET` (setrole 0).
                database = Some(value);
                continue;
            }
            // A role's setting in this database wins over its setting everywhere.
            match roles.get(&role) {
                Some((true, _)) if !in_database => {}
                _ => {
                    roles.insert(role, (in_database, value));
                }
            }
        }
        let server: (String, String) = client
            .query_one(
                "SELECT setting, source FROM pg_catalog.pg_settings WHERE name = 'search_path'",
                &[],
            )
            .await
            .map(|r| (r.get(0), r.get(1)))?;
        // The control connection's own value is the server's default unless its role or the
        // database set one (then the server's is not known from here).
        let server_default = matches!(
            server.1.as_str(),
            "default" | "configuration file" | "command line" | "environment variable"
        )
        .then_some(server.0);
        let schemas = client
            .query("SELECT nspname::text FROM pg_catalog.pg_namespace", &[])
            .await?
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect();
        self.snapshot.store(Arc::new(Snapshot {
            roles: roles.into_iter().map(|(k, (_, v))| (k, v)).collect(),
            fallback: database.or(server_default),
            schemas,
            loaded: true,
        }));
        Ok(())
    }

    /// The path a session of `user` starts with when its startup packet sets none. Before the
    /// catalog was read: [`SearchPath::Default`] (trusted for `public` only).
    pub fn for_user(&self, user: &str) -> SearchPath {
        let snapshot = self.snapshot.load();
        if !snapshot.loaded {
            return SearchPath::Default;
        }
        let Some(value) = snapshot.roles.get(user).or(snapshot.fallback.as_ref()) else {
            return SearchPath::Unknown;
        };
        match from_startup(Some(value), None) {
            SearchPath::Schemas(schemas) => SearchPath::Schemas(
                schemas
                    .into_iter()
                    .filter_map(|schema| match schema.as_str() {
                        "$user" => snapshot.schemas.contains(user).then(|| user.to_owned()),
                        _ => Some(schema),
                    })
                    .collect(),
            ),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(roles: &[(&str, &str)], fallback: Option<&str>, schemas: &[&str]) -> RolePaths {
        let paths = RolePaths::new();
        paths.snapshot.store(Arc::new(Snapshot {
            roles: roles
                .iter()
                .map(|(r, v)| (r.to_string(), v.to_string()))
                .collect(),
            fallback: fallback.map(str::to_owned),
            schemas: schemas.iter().map(|s| s.to_string()).collect(),
            loaded: true,
        }));
        paths
    }

    #[test]
    fn a_roles_own_setting_wins_and_user_means_an_existing_schema_only() {
        let p = paths(
            &[("app", "other, public")],
            Some("\"$user\", public"),
            &["public", "other", "carol"],
        );
        let schemas = |v: &[&str]| SearchPath::Schemas(v.iter().map(|s| s.to_string()).collect());
        assert_eq!(p.for_user("app"), schemas(&["other", "public"]));
        assert_eq!(p.for_user("bob"), schemas(&["public"]));
        assert_eq!(p.for_user("carol"), schemas(&["carol", "public"]));
        assert!(!p.for_user("carol").resolves_first_in("public"));
    }

    #[test]
    fn unknown_until_read_or_when_the_servers_default_is_hidden() {
        assert_eq!(RolePaths::new().for_user("app"), SearchPath::Default);
        assert_eq!(paths(&[], None, &[]).for_user("app"), SearchPath::Unknown);
    }
}
