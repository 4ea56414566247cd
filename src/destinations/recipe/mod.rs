//! `kind: recipe` and the shipped recipes (`kind: freshdesk` …): a destination described in
//! YAML as a sequence of HTTP steps (docs/RECIPES.md). The engine keeps each finished step's
//! captures with the delivery before the next request, so a retry resumes at the step that
//! did not finish; the requests `render` prints and the ones a delivery sends are built by the
//! same function from the same description.
//!
//! The file's shape is [`format`], reading and checking it [`check`], the destination's keys
//! [`settings`], the registry's kind [`kind`]; here, the run of a delivery's steps, with each
//! request built in `request` and each answer read in `answer`.

mod answer;
pub mod check;
pub mod format;
pub mod kind;
mod request;
pub mod settings;

use super::{http, BoxFuture, Delivered, DeliveryError, Destination, Job, Link, Request, Shared};
use crate::oauth::TokenSource;
use crate::render::RenderError;
use answer::read_all;
use format::{Outcome, Recipe, Sequence, Step};
use kind::RecipeSettings;
use serde_json::{Map, Value};
use settings::Resolved;
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

/// What a delivery has done so far: kept with it after every finished step.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct State {
    /// Which sequence the delivery runs (fixed by its first attempt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sequence: Option<Sequence>,
    /// Steps finished (or skipped), in order.
    #[serde(default)]
    done: Vec<String>,
    /// Items finished of a `foreach` step not finished yet.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    items: BTreeMap<String, usize>,
    /// Every value captured so far.
    #[serde(default)]
    captures: Map<String, Value>,
    /// The latest `sentAt` of the conversation's messages: a later version's `update.messages`
    /// are the ones sent after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_sent_at: Option<i64>,
}

impl State {
    fn read(text: Option<&str>) -> Option<Self> {
        text.and_then(|t| serde_json::from_str(t).ok())
    }
    fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// A recipe destination.
pub struct RecipeDestination {
    name: String,
    recipe: Arc<Recipe>,
    settings: Resolved,
    shared: Shared,
    tokens: OnceLock<TokenSource>,
    store: OnceLock<crate::store::Store>,
}

/// Where a request's templates are in the recipe: `create[0]`, `create[0].find`.
struct At<'a> {
    step: &'a Step,
    key: String,
    index: Option<usize>,
}

impl RecipeDestination {
    /// Builds the destination from checked settings.
    pub fn new(name: &str, settings: &RecipeSettings, shared: Shared) -> Self {
        Self {
            name: name.to_string(),
            recipe: settings.loaded.clone(),
            settings: settings.resolved.clone(),
            shared,
            tokens: OnceLock::new(),
            store: OnceLock::new(),
        }
    }

    /// The sequence a delivery with `previous` (the earlier version's record) runs.
    fn sequence_for(&self, previous: Option<&State>) -> Sequence {
        if self.recipe.update.is_empty() || previous.is_none_or(|p| p.done.is_empty()) {
            Sequence::Create
        } else {
            Sequence::Update
        }
    }

    /// The template data of a request: the conversation, captures, the earlier version's
    /// captures, `update` (`isUpdate`, and `messages`: those sent since the delivered earlier
    /// version, or all), and the item of a `foreach`.
    fn data(
        &self,
        job: &Job<'_>,
        captures: &Map<String, Value>,
        previous: Option<&State>,
        item: Option<(usize, &Value)>,
    ) -> Value {
        let mut data = job.context.data().clone();
        if let Value::Object(map) = &mut data {
            map.insert("captures".into(), Value::Object(captures.clone()));
            map.insert(
                "previous".into(),
                Value::Object(previous.map(|p| p.captures.clone()).unwrap_or_default()),
            );
            let is_update = self.sequence_for(previous) == Sequence::Update;
            let after = previous.filter(|_| is_update).and_then(|p| p.last_sent_at);
            let messages = crate::smartsupp::messages_after(job.context.data(), after);
            map.insert(
                "update".into(),
                serde_json::json!({ "isUpdate": is_update, "messages": messages }),
            );
            if let Some((index, item)) = item {
                map.insert("item".into(), item.clone());
                map.insert("index".into(), Value::from(index));
            }
        }
        data
    }

    /// Whether `step` runs for `data`.
    fn runs(&self, at: &str, step: &Step, data: &Value) -> Result<bool, RenderError> {
        if step.when.is_none() {
            return Ok(true);
        }
        let text = self.inline(
            &format!("{at}.when"),
            &handlebars::Context::from(data.clone()),
        )?;
        let text = text.trim();
        Ok(!(text.is_empty() || text == "false"))
    }

    /// The items of a `foreach` step.
    fn items(&self, step: &Step, data: &Value) -> Result<Vec<Value>, RenderError> {
        let Some(path) = &step.foreach else {
            return Ok(Vec::new());
        };
        let mut node = data;
        for part in path.split('.').filter(|p| !p.is_empty()) {
            node = node.get(part).unwrap_or(&Value::Null);
        }
        match node {
            Value::Array(items) => Ok(items.clone()),
            Value::Null => Ok(Vec::new()),
            _ => Err(RenderError::Render {
                name: format!("destinations.{}: step {} foreach", self.name, step.id),
                message: format!("{path} is not a list"),
            }),
        }
    }

    /// Runs one request of a step (its `find` first) and reads its captures into `captures`.
    async fn run(
        &self,
        at: &At<'_>,
        job: &Job<'_>,
        data: &Value,
        captures: &mut Map<String, Value>,
    ) -> Result<http::Exchange, DeliveryError> {
        if let Some(find) = &at.step.find {
            let find_at = At {
                step: at.step,
                key: format!("{}.find", at.key),
                index: at.index,
            };
            let request = self.request(&find_at, find, job, data)?;
            let answer = self.send(&request).await?;
            if (200..300).contains(&answer.status) {
                if let Ok(found) = read_all(&find.capture, &answer, false) {
                    captures.extend(found);
                    return Ok(answer);
                }
            } else if answer.status != 404 {
                return Err(self.failure(at.step, &answer, None));
            }
        }
        let request = self.request(at, &at.step.request, job, data)?;
        let answer = self.send(&request).await?;
        let rule = at
            .step
            .outcomes
            .iter()
            .find(|r| r.status.matches(answer.status));
        let outcome = rule.map(|r| r.outcome).unwrap_or(match answer.status {
            200..=299 => Outcome::Done,
            _ => Outcome::Dead,
        });
        match outcome {
            Outcome::Done => {
                let found = read_all(&at.step.request.capture, &answer, false)
                    .map_err(|missing| self.missing(at.step, &answer, &missing))?;
                captures.extend(found);
                Ok(answer)
            }
            Outcome::Exists => {
                let list = match rule {
                    Some(r) if !r.capture.is_empty() => &r.capture,
                    _ => &at.step.request.capture,
                };
                let found = read_all(list, &answer, false)
                    .map_err(|missing| self.missing(at.step, &answer, &missing))?;
                captures.extend(found);
                Ok(answer)
            }
            Outcome::Retry | Outcome::Dead | Outcome::Credentials => Err(self.failure(
                at.step,
                &answer,
                rule.map(|r| (r.outcome, r.message.as_deref())),
            )),
        }
    }

    /// Keeps `state` with the delivery (in the store, under the attempt's claim).
    async fn keep(&self, job: &Job<'_>, state: &State) -> Result<(), DeliveryError> {
        job.progress.save(state.to_json()).await
    }

    async fn deliver_job(&self, job: &Job<'_>) -> Result<Delivered, DeliveryError> {
        let previous = State::read(job.previous);
        let mut state = State::read(job.result).unwrap_or_default();
        let sequence = *state
            .sequence
            .get_or_insert_with(|| self.sequence_for(previous.as_ref()));
        state.last_sent_at = crate::smartsupp::last_sent_at(job.context.data());
        let name = match sequence {
            Sequence::Create => "create",
            Sequence::Update => "update",
        };
        let mut last: Option<http::Exchange> = None;
        for (i, step) in self.recipe.steps(sequence).iter().enumerate() {
            if state.done.contains(&step.id) {
                continue;
            }
            let key = format!("{name}[{i}]");
            let data = self.data(job, &state.captures, previous.as_ref(), None);
            if self.runs(&key, step, &data)? {
                if step.foreach.is_some() {
                    let items = self.items(step, &data)?;
                    let start = state.items.get(&step.id).copied().unwrap_or(0);
                    for (index, item) in items.iter().enumerate().skip(start) {
                        let data =
                            self.data(job, &state.captures, previous.as_ref(), Some((index, item)));
                        let at = At {
                            step,
                            key: key.clone(),
                            index: Some(index),
                        };
                        last = Some(self.run(&at, job, &data, &mut state.captures).await?);
                        state.items.insert(step.id.clone(), index + 1);
                        self.keep(job, &state).await?;
                    }
                } else {
                    let at = At {
                        step,
                        key: key.clone(),
                        index: None,
                    };
                    last = Some(self.run(&at, job, &data, &mut state.captures).await?);
                }
            }
            state.items.remove(&step.id);
            state.done.push(step.id.clone());
            self.keep(job, &state).await?;
        }
        Ok(Delivered {
            status: last.as_ref().map(|a| a.status),
            excerpt: last.as_ref().and_then(|a| http::excerpt(&a.body)),
            result: Some(state.to_json()),
        })
    }

    /// A state with every capture of `sequence` standing for itself (`<captured ticket_id>`).
    fn placeholders(&self, sequence: Sequence) -> State {
        let mut state = State {
            sequence: Some(sequence),
            last_sent_at: Some(0),
            ..State::default()
        };
        for step in self.recipe.steps(sequence) {
            state.done.push(step.id.clone());
            let lists = [
                Some(&step.request.capture),
                step.find.as_ref().map(|f| &f.capture),
            ];
            let names = lists
                .into_iter()
                .flatten()
                .flat_map(|c| c.keys())
                .chain(step.outcomes.iter().flat_map(|r| r.capture.keys()));
            for name in names {
                state
                    .captures
                    .insert(name.clone(), Value::String(format!("<captured {name}>")));
            }
        }
        state
    }
}

impl Destination for RecipeDestination {
    fn name(&self) -> &str {
        &self.name
    }

    fn requests(&self, job: &Job<'_>) -> Result<Vec<Request>, RenderError> {
        let previous = State::read(job.previous);
        let sequence = self.sequence_for(previous.as_ref());
        let name = match sequence {
            Sequence::Create => "create",
            Sequence::Update => "update",
        };
        let captures = self.placeholders(sequence).captures;
        let mut out = Vec::new();
        for (i, step) in self.recipe.steps(sequence).iter().enumerate() {
            let key = format!("{name}[{i}]");
            let data = self.data(job, &captures, previous.as_ref(), None);
            if !self.runs(&key, step, &data)? {
                continue;
            }
            let items: Vec<Option<(usize, Value)>> = if step.foreach.is_some() {
                self.items(step, &data)?
                    .into_iter()
                    .enumerate()
                    .map(Some)
                    .collect()
            } else {
                vec![None]
            };
            for item in items {
                let data = self.data(
                    job,
                    &captures,
                    previous.as_ref(),
                    item.as_ref().map(|(i, v)| (*i, v)),
                );
                let index = item.as_ref().map(|(i, _)| *i);
                if let Some(find) = &step.find {
                    let at = At {
                        step,
                        key: format!("{key}.find"),
                        index,
                    };
                    out.push(self.request(&at, find, job, &data)?);
                }
                let at = At {
                    step,
                    key: key.clone(),
                    index,
                };
                out.push(self.request(&at, &step.request, job, &data)?);
            }
        }
        Ok(out)
    }

    fn deliver<'a>(&'a self, job: &'a Job<'a>) -> BoxFuture<'a, Result<Delivered, DeliveryError>> {
        Box::pin(self.deliver_job(job))
    }

    fn template_vars(&self) -> Map<String, Value> {
        let mut vars = self.settings.public.clone();
        vars.insert("kind".into(), Value::String(self.recipe.name.clone()));
        vars
    }

    fn sample_previous(&self) -> Option<String> {
        (!self.recipe.update.is_empty()).then(|| self.placeholders(Sequence::Create).to_json())
    }

    fn attach(&self, store: &crate::store::Store) {
        let _ = self.store.set(store.clone());
        if let Some(tokens) = self.tokens.get() {
            tokens.attach(store);
        }
    }

    fn links(&self, result: &Value) -> Vec<Link> {
        let Some(state) = serde_json::from_value::<State>(result.clone()).ok() else {
            return Vec::new();
        };
        let ctx = handlebars::Context::from(serde_json::json!({
            "destination": self.settings.public,
            "captures": state.captures,
        }));
        let mut out = Vec::new();
        for (i, link) in self.recipe.links.iter().enumerate() {
            let Ok(id) = self.inline(&format!("links[{i}].id"), &ctx) else {
                continue;
            };
            if id.trim().is_empty() {
                continue;
            }
            let url = link
                .url
                .as_ref()
                .and_then(|_| self.inline(&format!("links[{i}].url"), &ctx).ok())
                .and_then(|u| crate::render::helpers::web_url(&u));
            out.push(Link {
                label: link.label.clone(),
                id,
                url,
            });
        }
        out
    }
}
