//! The visitor of a conversation as the dashboard shows them: one name on every page, how to
//! reach them, where they were, and what the site told Smartsupp about them.

use super::display_name;
use crate::smartsupp::non_empty;
use serde::Serialize;
use serde_json::Value;

/// The visitor of a conversation.
#[derive(Debug, Default, Serialize)]
pub struct VisitorView {
    /// Name, email, or "Anonymous visitor": the same name on every page.
    pub display_name: String,
    /// Smartsupp's id of the visitor.
    pub smartsupp_id: Option<String>,
    /// Email, when it looks like one.
    pub email: Option<String>,
    /// The agents' note.
    pub note: Option<String>,
    /// City and country.
    pub location: Option<String>,
    /// IP address.
    pub ip_address: Option<String>,
    /// Browser user agent.
    pub user_agent: Option<String>,
    /// Pages visited.
    pub pages: Vec<Page>,
    /// Custom variables.
    pub variables: Vec<Variable>,
}

/// A page the visitor saw.
#[derive(Debug, Serialize)]
pub struct Page {
    /// Its address.
    pub url: String,
    /// Its title.
    pub title: Option<String>,
}

/// A custom variable.
#[derive(Debug, Serialize)]
pub struct Variable {
    /// Its label.
    pub label: String,
    /// Its value as text.
    pub value: String,
}

/// The visitor of a conversation's template context.
pub fn visitor(context: &Value) -> VisitorView {
    let v = &context["visitor"];
    let location = [non_empty(&v["city"]), non_empty(&v["country"])]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(", ");
    let pages = context["paths"]
        .as_array()
        .map(|paths| {
            paths
                .iter()
                .filter_map(|p| {
                    Some(Page {
                        url: non_empty(&p["url"])?,
                        title: non_empty(&p["title"]),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let variables = v["variables"]
        .as_object()
        .map(|vars| {
            vars.iter()
                .map(|(name, var)| Variable {
                    label: non_empty(&var["label"]).unwrap_or_else(|| name.clone()),
                    value: non_empty(&var["value"]).unwrap_or_else(|| var["value"].to_string()),
                })
                .collect()
        })
        .unwrap_or_default();
    let email = non_empty(&context["meta"]["email"]);
    VisitorView {
        display_name: display_name(non_empty(&v["name"]).as_deref(), email.as_deref()),
        smartsupp_id: non_empty(&v["id"]),
        email,
        note: non_empty(&v["note"]),
        location: Some(location).filter(|l| !l.is_empty()),
        ip_address: non_empty(&v["ipAddress"]),
        user_agent: non_empty(&v["userAgent"]),
        pages,
        variables,
    }
}
