//! Template rendering: one Handlebars registry per escape mode, strict mode, deskbridge's
//! helpers, and JSON validation of `*.json.hbs` output.

pub mod escape;
pub mod helpers;
pub mod transcript;

use escape::EscapeMode;
use handlebars::{Context, Handlebars};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Why a template could not be loaded or rendered. Every variant names the template.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RenderError {
    /// The template folder, or a template in it, could not be read.
    #[error("cannot read templates from {path}")]
    Io {
        /// The folder, or the file that could not be read.
        path: String,
        /// The operating system's error.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// A template does not compile (the message gives line and column).
    #[error("template {name} does not compile: {message}")]
    Compile {
        /// Template name (path under the template folder).
        name: String,
        /// Handlebars' message with the position.
        message: String,
    },
    /// No template of that name is loaded.
    #[error("template {name} does not exist under {dir}")]
    Missing {
        /// Template name.
        name: String,
        /// The template folder.
        dir: String,
    },
    /// Rendering failed (a missing variable in strict mode, a helper error).
    #[error("template {name} failed to render: {message}")]
    Render {
        /// Template name.
        name: String,
        /// Handlebars' message with the position.
        message: String,
    },
    /// A `*.json.hbs` template produced text that is not JSON.
    #[error("template {name} rendered invalid JSON: {message}")]
    InvalidJson {
        /// Template name.
        name: String,
        /// The parser's message with line and column of the rendered text.
        message: String,
    },
}

/// A registry that JSON templates can `include` from.
type Shared = Arc<RwLock<Handlebars<'static>>>;

/// All templates of a template folder, compiled, plus `when` expressions.
pub struct Renderer {
    dir: PathBuf,
    json: Handlebars<'static>,
    html: Shared,
    text: Shared,
}

fn read(registry: &Shared) -> RwLockReadGuard<'_, Handlebars<'static>> {
    registry
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write(registry: &Shared) -> RwLockWriteGuard<'_, Handlebars<'static>> {
    registry
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn registry(mode: EscapeMode) -> Handlebars<'static> {
    let mut h = Handlebars::new();
    h.set_strict_mode(true);
    match mode {
        EscapeMode::Json => h.register_escape_fn(escape::json_string_content),
        EscapeMode::Html => h.register_escape_fn(handlebars::html_escape),
        EscapeMode::Text => h.register_escape_fn(handlebars::no_escape),
    }
    helpers::register(&mut h);
    h
}

impl Renderer {
    /// An empty renderer for templates under `dir`.
    pub fn new(dir: &Path) -> Self {
        let html: Shared = Arc::new(RwLock::new(registry(EscapeMode::Html)));
        let text: Shared = Arc::new(RwLock::new(registry(EscapeMode::Text)));
        let mut json = registry(EscapeMode::Json);
        json.register_helper(
            "include",
            Box::new(helpers::Include {
                html: html.clone(),
                text: text.clone(),
            }),
        );
        Self {
            dir: dir.to_path_buf(),
            json,
            html,
            text,
        }
    }

    /// Compiles every `*.hbs` file under `dir`; names are paths relative to `dir` with `/`.
    pub fn load(dir: &Path) -> Result<Self, RenderError> {
        let mut renderer = Self::new(dir);
        let mut files = Vec::new();
        collect(dir, &mut files).map_err(|e| RenderError::Io {
            path: dir.display().to_string(),
            source: Arc::new(e),
        })?;
        files.sort();
        for file in files {
            let name = file
                .strip_prefix(dir)
                .unwrap_or(&file)
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            let source = std::fs::read_to_string(&file).map_err(|e| RenderError::Io {
                path: file.display().to_string(),
                source: Arc::new(e),
            })?;
            renderer.add(&name, &source)?;
        }
        Ok(renderer)
    }

    /// Compiles one template under `name`.
    pub fn add(&mut self, name: &str, source: &str) -> Result<(), RenderError> {
        let result = match EscapeMode::for_name(name) {
            EscapeMode::Json => self.json.register_template_string(name, source),
            EscapeMode::Html => write(&self.html).register_template_string(name, source),
            EscapeMode::Text => write(&self.text).register_template_string(name, source),
        };
        result.map_err(|e| RenderError::Compile {
            name: name.to_string(),
            message: e.to_string(),
        })
    }

    /// Whether a template of that name is loaded.
    pub fn has(&self, name: &str) -> bool {
        match EscapeMode::for_name(name) {
            EscapeMode::Json => self.json.has_template(name),
            EscapeMode::Html => read(&self.html).has_template(name),
            EscapeMode::Text => read(&self.text).has_template(name),
        }
    }

    /// An error unless `name` is loaded.
    pub fn require(&self, name: &str) -> Result<(), RenderError> {
        if self.has(name) {
            Ok(())
        } else {
            Err(RenderError::Missing {
                name: name.to_string(),
                dir: self.dir.display().to_string(),
            })
        }
    }

    /// Renders `name` against `ctx`; `*.json.hbs` output must parse as JSON.
    pub fn render(&self, name: &str, ctx: &Context) -> Result<String, RenderError> {
        let mut span =
            crate::telemetry::trace::child("render", crate::telemetry::trace::Kind::Internal);
        span.set("deskbridge.template", name);
        let rendered = self.render_unspanned(name, ctx);
        if let Err(e) = &rendered {
            span.fail(crate::telemetry::spans::reason(&e.to_string()));
        }
        rendered
    }

    fn render_unspanned(&self, name: &str, ctx: &Context) -> Result<String, RenderError> {
        self.require(name)?;
        let mode = EscapeMode::for_name(name);
        let rendered = match mode {
            EscapeMode::Json => self.json.render_with_context(name, ctx),
            EscapeMode::Html => read(&self.html).render_with_context(name, ctx),
            EscapeMode::Text => read(&self.text).render_with_context(name, ctx),
        };
        let text = rendered.map_err(|e| RenderError::Render {
            name: name.to_string(),
            message: e.to_string(),
        })?;
        if mode == EscapeMode::Json {
            if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(&text) {
                return Err(RenderError::InvalidJson {
                    name: name.to_string(),
                    message: e.to_string(),
                });
            }
        }
        Ok(text)
    }

    /// Compiles a `when` expression of destination `destination`.
    pub fn add_expression(
        &mut self,
        destination: &str,
        expression: &str,
    ) -> Result<(), RenderError> {
        write(&self.text)
            .register_template_string(&expression_name(destination), expression)
            .map_err(|e| RenderError::Compile {
                name: format!("destinations.{destination}.when"),
                message: e.to_string(),
            })
    }

    /// Compiles a text template written in the configuration at `destinations.{destination}.{key}`
    /// (an email subject, a recipient); errors name that key.
    pub fn add_inline(
        &mut self,
        destination: &str,
        key: &str,
        source: &str,
    ) -> Result<(), RenderError> {
        write(&self.text)
            .register_template_string(&inline_name(destination, key), source)
            .map_err(|e| RenderError::Compile {
                name: format!("destinations.{destination}.{key}"),
                message: e.to_string(),
            })
    }

    /// Renders the inline template at `destinations.{destination}.{key}` as text.
    pub fn render_inline(
        &self,
        destination: &str,
        key: &str,
        ctx: &Context,
    ) -> Result<String, RenderError> {
        let name = format!("destinations.{destination}.{key}");
        let registry = read(&self.text);
        if !registry.has_template(&inline_name(destination, key)) {
            return Err(RenderError::Missing {
                name,
                dir: "the configuration".into(),
            });
        }
        registry
            .render_with_context(&inline_name(destination, key), ctx)
            .map_err(|e| RenderError::Render {
                name,
                message: e.to_string(),
            })
    }

    /// Whether the `when` expression of `destination` renders `true` for `ctx`.
    pub fn matches(&self, destination: &str, ctx: &Context) -> Result<bool, RenderError> {
        let text = read(&self.text)
            .render_with_context(&expression_name(destination), ctx)
            .map_err(|e| RenderError::Render {
                name: format!("destinations.{destination}.when"),
                message: e.to_string(),
            })?;
        Ok(text.trim() == "true")
    }
}

fn expression_name(destination: &str) -> String {
    format!("when:{destination}")
}

fn inline_name(destination: &str, key: &str) -> String {
    format!("inline:{destination}.{key}")
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "hbs") {
            out.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn renderer(name: &str, source: &str) -> Renderer {
        let mut r = Renderer::new(Path::new("templates"));
        r.add(name, source).unwrap();
        r
    }

    #[test]
    fn json_templates_escape_strings_and_json_helper_writes_literals() {
        let r = renderer(
            "t.json.hbs",
            r#"{"a": "{{x}}", "b": {{json x}}, "c": {{json o}}}"#,
        );
        let nasty = "q\"\\\n\u{7}</script>{{y}}😀";
        let ctx = Context::from(json!({"x": nasty, "o": {"k": [1, null]}}));
        let out: serde_json::Value =
            serde_json::from_str(&r.render("t.json.hbs", &ctx).unwrap()).unwrap();
        assert_eq!(out["a"], nasty);
        assert_eq!(out["b"], nasty);
        assert_eq!(out["c"], json!({"k": [1, null]}));
    }

    #[test]
    fn last_keeps_the_end_of_a_list() {
        let r = renderer(
            "l.txt.hbs",
            "{{#each (last xs 2)}}{{this}},{{/each}}|{{len (last xs 9)}}|{{len (last n 3)}}",
        );
        let ctx = Context::from(json!({"xs": [1, 2, 3], "n": null}));
        assert_eq!(r.render("l.txt.hbs", &ctx).unwrap(), "2,3,|3|0");
        let r = renderer("e.txt.hbs", "{{last xs \"two\"}}");
        assert!(r.render("e.txt.hbs", &ctx).is_err());
    }

    #[test]
    fn number_reads_whole_numbers_written_as_text() {
        let r = renderer(
            "n.json.hbs",
            "[{{json (number a)}}, {{json (number b)}}, {{json (number c)}}, {{json (number d)}}]",
        );
        let ctx = Context::from(json!({"a": "501", "b": 7, "c": "<captured id>", "d": "12a"}));
        let out: serde_json::Value =
            serde_json::from_str(&r.render("n.json.hbs", &ctx).unwrap()).unwrap();
        assert_eq!(out, json!([501, 7, "<captured id>", "12a"]));
    }

    #[test]
    fn strict_mode_rejects_misspelt_variables_but_not_nulls() {
        let r = renderer("t.txt.hbs", "{{visitor.nmae}}");
        let err = r
            .render(
                "t.txt.hbs",
                &Context::from(json!({"visitor": {"name": "x"}})),
            )
            .unwrap_err();
        assert!(matches!(err, RenderError::Render { .. }), "{err}");
        let r = renderer("n.txt.hbs", "[{{visitor.name}}]");
        let out = r
            .render(
                "n.txt.hbs",
                &Context::from(json!({"visitor": {"name": null}})),
            )
            .unwrap();
        assert_eq!(out, "[]");
    }

    #[test]
    fn invalid_json_output_names_the_template() {
        let r = renderer("bad.json.hbs", "{\"a\": {{x}} }");
        let err = r
            .render(
                "bad.json.hbs",
                &Context::from(json!({"x": "not a literal"})),
            )
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("bad.json.hbs rendered invalid JSON"),
            "{err}"
        );
    }

    #[test]
    fn compile_errors_give_the_position() {
        let mut r = Renderer::new(Path::new("templates"));
        let err = r
            .add("x.json.hbs", "{\n  \"a\": \"{{#if x}}\"\n}")
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("x.json.hbs"), "{text}");
    }

    #[test]
    fn html_templates_escape_markup() {
        let r = renderer("p.html.hbs", "<p>{{name}}</p>");
        let out = r
            .render(
                "p.html.hbs",
                &Context::from(json!({"name": "<script>x</script>"})),
            )
            .unwrap();
        assert_eq!(out, "<p>&lt;script&gt;x&lt;/script&gt;</p>");
    }

    #[test]
    fn json_templates_include_html_templates_as_escaped_strings() {
        let mut r = Renderer::new(Path::new("templates"));
        r.add("part.html.hbs", "<p class=\"n\">{{name}}</p>\n")
            .unwrap();
        r.add("t.json.hbs", r#"{"html": "{{include "part.html.hbs"}}"}"#)
            .unwrap();
        let ctx = Context::from(json!({"name": "<b>\"x\"</b>"}));
        let out: serde_json::Value =
            serde_json::from_str(&r.render("t.json.hbs", &ctx).unwrap()).unwrap();
        assert_eq!(
            out["html"],
            "<p class=\"n\">&lt;b&gt;&quot;x&quot;&lt;/b&gt;</p>\n"
        );
        r.add("bad.json.hbs", r#"{"x": "{{include "nope.html.hbs"}}"}"#)
            .unwrap();
        assert!(r.render("bad.json.hbs", &ctx).is_err());
    }

    #[test]
    fn inline_templates_render_as_text_and_name_their_key() {
        let mut r = Renderer::new(Path::new("templates"));
        r.add("part.txt.hbs", "<{{name}}>").unwrap();
        r.add_inline("mail", "subject", "Chat with {{> part.txt.hbs}} & co")
            .unwrap();
        let ctx = Context::from(json!({"name": "Dana \"D\" <d>"}));
        let out = r.render_inline("mail", "subject", &ctx).unwrap();
        assert_eq!(out, "Chat with <Dana \"D\" <d>> & co");
        let err = r.add_inline("mail", "to[0]", "{{#if x}}").unwrap_err();
        assert!(err.to_string().contains("destinations.mail.to[0]"), "{err}");
        r.add_inline("mail", "cc[0]", "{{nmae}}").unwrap();
        let err = r.render_inline("mail", "cc[0]", &ctx).unwrap_err();
        assert!(err.to_string().contains("destinations.mail.cc[0]"), "{err}");
    }

    #[test]
    fn when_expressions_match_on_true() {
        let mut r = Renderer::new(Path::new("templates"));
        r.add_expression("d", "{{or channel.isMissed channel.isOffline}}")
            .unwrap();
        let yes = Context::from(json!({"channel": {"isMissed": true, "isOffline": false}}));
        let no = Context::from(json!({"channel": {"isMissed": false, "isOffline": false}}));
        assert!(r.matches("d", &yes).unwrap());
        assert!(!r.matches("d", &no).unwrap());
    }
}
