//! Times building the template context and rendering one template for a conversation file,
//! the mean of `ROUNDS` rounds (default 20):
//! `ROUNDS=20000 cargo run --release --example render_bench -- FILE.json TEMPLATE_DIR TEMPLATE`.

use deskbridge::render::Renderer;
use deskbridge::smartsupp::{context, Stored};
use std::path::Path;
use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [file, dir, template] = args.as_slice() else {
        anyhow::bail!("usage: render_bench FILE.json TEMPLATE_DIR TEMPLATE");
    };
    let raw = std::fs::read(file)?;
    let renderer = Renderer::load(Path::new(dir))?;
    let stored = Stored {
        key: "bench".into(),
        version: 1,
        received_at: 0,
    };
    let rounds: u32 = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(20);
    let mut bytes = 0;
    let started = Instant::now();
    for _ in 0..rounds {
        let ctx = handlebars::Context::from(context(&raw, &stored)?);
        bytes = renderer.render(template, &ctx)?.len();
    }
    let each = started.elapsed() / rounds;
    println!(
        "render of {template} for {file}: {:.1} µs per conversation ({bytes} bytes out)",
        each.as_secs_f64() * 1e6
    );
    Ok(())
}
