//! Rendering a [`Report`](super::Report): human text, the stable JSON contract, GitHub workflow
//! annotations and SARIF. Renderers return strings; the CLI decides where they go.

pub mod github;
pub mod human;
pub mod json;
pub mod sarif;
