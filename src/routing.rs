//! Routing: which destinations get a conversation, from each destination's `when` expression.

use crate::config::Settings;
use crate::render::Renderer;
use crate::store::Routed;
use handlebars::Context;

/// The configured destinations in order, and whether each has a `when` expression.
#[derive(Debug, Clone)]
pub struct Router {
    destinations: Vec<(String, bool)>,
}

impl Router {
    /// Reads the destinations of `settings`; their expressions are compiled into the
    /// renderer by [`crate::app::prepare`].
    pub fn new(settings: &Settings) -> Self {
        Self {
            destinations: settings
                .destinations
                .iter()
                .map(|(name, d)| (name.clone(), d.when().is_some()))
                .collect(),
        }
    }

    /// Whether routing must look at the conversation (some destination has `when`).
    pub fn needs_context(&self) -> bool {
        self.destinations.iter().any(|(_, has_when)| *has_when)
    }

    /// The deliveries to create. `context` is required when [`Router::needs_context`]. An
    /// expression that fails to render gives a delivery that is dead from the start, with
    /// the error, so the conversation is never silently dropped.
    pub fn route(&self, renderer: &Renderer, context: Option<&Context>) -> Vec<Routed> {
        let mut out = Vec::with_capacity(self.destinations.len());
        for (name, has_when) in &self.destinations {
            let decision = match (has_when, context) {
                (false, _) => Ok(true),
                (true, Some(ctx)) => renderer.matches(name, ctx).map_err(|e| e.to_string()),
                (true, None) => Err("routing needed the conversation but had none".to_string()),
            };
            match decision {
                Ok(true) => out.push(Routed {
                    destination: name.clone(),
                    error: None,
                    lease_until: None,
                }),
                Ok(false) => {}
                Err(error) => out.push(Routed {
                    destination: name.clone(),
                    error: Some(error),
                    lease_until: None,
                }),
            }
        }
        out
    }
}
