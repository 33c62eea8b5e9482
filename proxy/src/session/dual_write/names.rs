//! How a session's unqualified table names resolve, as its own statements showed.

use duet_shadow::rewrite::search_path::{name_change, NameChange, SearchPath};

/// How a session's unqualified table names resolve (`duet_shadow::rewrite::search_path`).
#[derive(Debug, Default)]
pub(crate) struct Names {
    /// Its `search_path`, as its statements set it.
    pub(crate) search_path: SearchPath,
    /// The path its startup packet set (what `RESET search_path`, `RESET ALL` and `DISCARD ALL`
    /// return to).
    pub(crate) at_startup: SearchPath,
    /// It may have made a temporary table, which `pg_temp` finds before any schema.
    pub(crate) temporary: bool,
}

impl Names {
    /// Follows one Query or Parse text (with or without a migration: a session sets its path
    /// long before one starts). Returns whether something changed.
    pub(crate) fn follow(&mut self, text: &str) -> bool {
        match name_change(text) {
            NameChange::None => return false,
            NameChange::SearchPath(SearchPath::Default) => {
                self.search_path = self.at_startup.clone()
            }
            NameChange::SearchPath(path) => self.search_path = path,
            NameChange::Temporary => self.temporary = true,
            NameChange::DiscardAll => {
                self.search_path = self.at_startup.clone();
                self.temporary = false;
            }
        }
        true
    }

    /// Whether a rewrite that took these schemas' tables for unqualified names is right here.
    pub(crate) fn sure_of(&self, unqualified: &[String]) -> bool {
        unqualified.is_empty()
            || (!self.temporary
                && unqualified
                    .iter()
                    .all(|schema| self.search_path.resolves_first_in(schema)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_sure_of_its_names_only_while_its_path_starts_with_the_schema() {
        let app = vec!["app".to_owned()];
        let mut names = Names {
            search_path: SearchPath::Schemas(app.clone()),
            at_startup: SearchPath::Schemas(app.clone()),
            temporary: false,
        };
        assert!(names.sure_of(&app));
        assert!(names.sure_of(&[]), "qualified names are always exact");
        names.follow("SET search_path TO other, app");
        assert!(!names.sure_of(&app));
        names.follow("RESET search_path");
        assert!(names.sure_of(&app), "back to the startup packet's path");
        names.follow("CREATE TEMP TABLE t (id int)");
        assert!(!names.sure_of(&app));
        names.follow("DISCARD ALL");
        assert!(names.sure_of(&app));
        names.follow("SELECT set_config('search_path', 'x', false)");
        assert!(!names.sure_of(&app));
        assert!(Names::default().sure_of(&["public".to_owned()]));
        assert!(!Names::default().sure_of(&app));
    }
}
