//! Before the first step: is what the world reaches outside itself there? Each
//! model server a world may think with answers, each API key variable it names is
//! set, each MCP server's command exists. A run that would otherwise fail every call
//! quietly — into `THINKING_FAILED` events nobody reads — is told at once, one line a
//! problem.
//!
//! Replays need none of it (answers come from the recording), so they are not checked.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    time::Duration,
};

use bevy_ecs::prelude::*;

use crate::{
    bridge::{config::Endpoint, mcp::McpServerConfig},
    scene::ValidScene,
    world::{components::ModelChoice, config::Config},
};

/// How long a model server has to answer the check (connecting included; a refused
/// connection is tried again until then, every `RETRY_CONNECT`).
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
const RETRY_CONNECT: Duration = Duration::from_millis(250);

/// The models a world may think with: its default, its scorer's, and every
/// principal's own.
fn models_in_use(world: &mut World) -> BTreeSet<String> {
    let mut models = world_models(world.resource::<Config>());
    let mut chosen = world.query::<&ModelChoice>();
    models.extend(chosen.iter(world).map(|c| c.model().to_owned()));
    models
}

/// The world's own models: its default and its scorer's.
fn world_models(config: &Config) -> BTreeSet<String> {
    config.llm.default_model.iter().chain(config.llm.scorer_model.iter()).cloned().collect()
}

/// What a world is missing, one line each; empty when everything is there.
pub fn check(world: &mut World) -> Vec<String> {
    let models = models_in_use(world);
    check_config(world.resource::<Config>(), &models)
}

/// What a scene is missing, before a world is made of it.
pub fn check_scene(scene: &ValidScene) -> Vec<String> {
    let mut models = world_models(&scene.config);
    models.extend(scene.principals.iter().filter_map(|p| p.model.clone()));
    check_config(&scene.config, &models)
}

/// What is missing of `config`'s outside world, for a world thinking with `models`.
fn check_config(config: &Config, models: &BTreeSet<String>) -> Vec<String> {
    let mut problems = Vec::new();
    // Endpoints in use, each with the models it serves.
    let mut endpoints: Vec<(&str, &Endpoint, Vec<&str>)> = Vec::new();
    for name in models {
        match config.llm.model(Some(name)) {
            Ok((model_name, model)) => match config.llm.endpoints.get_key_value(&model.endpoint) {
                Some((endpoint_name, endpoint)) => match endpoints.iter_mut().find(|e| e.0 == endpoint_name) {
                    Some(entry) => entry.2.push(model_name),
                    None => endpoints.push((endpoint_name, endpoint, vec![model_name])),
                },
                None => problems.push(format!("model {model_name}: no endpoint {:?}", model.endpoint)),
            },
            Err(why) => problems.push(why),
        }
    }
    let mut to_probe = Vec::new();
    for (name, endpoint, served) in endpoints {
        let what = format!("model {} (endpoint {name}, {})", served.join(", "), endpoint.base_url);
        match &endpoint.api_key_env {
            Some(var) if std::env::var(var).map_or(true, |v| v.is_empty()) => {
                problems.push(format!("{what}: its API key is read from ${var}, which is not set"));
            }
            _ => to_probe.push((what, endpoint.base_url.clone())),
        }
    }
    problems.extend(probe_all(to_probe));
    for (name, server) in &config.mcp.servers {
        if let Err(why) = command_exists(server) {
            problems.push(format!("MCP server {name}: {why}"));
        }
    }
    problems
}

/// Asks each server for its models; any HTTP answer at all (even an error status)
/// means it is there.
fn probe_all(endpoints: Vec<(String, String)>) -> Vec<String> {
    if endpoints.is_empty() {
        return Vec::new();
    }
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => return vec![format!("cannot start the runtime to check model servers: {e}")],
    };
    // reqwest is built without a default TLS provider: install ring's (a second
    // install is refused, and the first one stands).
    let _ = rustls::crypto::ring::default_provider().install_default();
    runtime.block_on(async {
        let http = match reqwest::Client::builder().timeout(PROBE_TIMEOUT).connect_timeout(PROBE_TIMEOUT).build() {
            Ok(http) => http,
            Err(e) => return vec![format!("cannot build the HTTP client to check model servers: {e}")],
        };
        // All at once, so that several dead servers cost one timeout, not several.
        let mut probes = tokio::task::JoinSet::new();
        for (i, (what, base_url)) in endpoints.into_iter().enumerate() {
            let http = http.clone();
            probes.spawn(async move {
                let url = format!("{}/models", base_url.trim_end_matches('/'));
                let started = tokio::time::Instant::now();
                let problem = loop {
                    match http.get(&url).send().await {
                        Ok(_) => break None,
                        // A server started a moment ago may not listen yet.
                        Err(error) if error.is_connect() && started.elapsed() < PROBE_TIMEOUT => {
                            tokio::time::sleep(RETRY_CONNECT).await;
                        }
                        Err(error) => break Some(format!("{what} does not answer: {}", cause(&error))),
                    }
                };
                (i, problem)
            });
        }
        let mut problems: Vec<(usize, String)> = Vec::new();
        while let Some(done) = probes.join_next().await {
            match done {
                Ok((i, Some(problem))) => problems.push((i, problem)),
                Ok((_, None)) => {}
                Err(e) => problems.push((usize::MAX, format!("checking a model server failed: {e}"))),
            }
        }
        problems.sort();
        problems.into_iter().map(|(_, problem)| problem).collect()
    })
}

/// The innermost cause of a failed request, which says what happened ("Connection
/// refused", "failed to lookup address"), after reqwest's own words.
fn cause(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        return format!("no answer within {} s", PROBE_TIMEOUT.as_secs());
    }
    let mut last: &dyn std::error::Error = error;
    while let Some(source) = last.source() {
        last = source;
    }
    last.to_string()
}

/// Whether `server`'s command can be started: a path that is a file, or a name found
/// on `PATH`.
fn command_exists(server: &McpServerConfig) -> Result<(), String> {
    let command = Path::new(&server.command);
    let declared = &server.declared_command;
    if command.components().count() > 1 || command.is_absolute() {
        return if command.is_file() {
            Ok(())
        } else {
            Err(format!("its command {declared} ({}) does not exist — is the server installed?", command.display()))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path).map(|dir| dir.join(command)).any(|p: PathBuf| p.is_file());
    if found { Ok(()) } else { Err(format!("its command {declared} is not on PATH — is it installed?")) }
}
