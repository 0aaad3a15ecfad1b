//! Validating `config.llm`: endpoints that can be reached, models with prices on
//! endpoints that exist, and key *variable names* (a key pasted in is refused, so it
//! never sits in a scene file).

use super::{Anchor, Checker, SceneError, quoted};
use crate::{
    bridge::config::{Endpoint, LlmConfig, Model, is_variable_name, micro_per_mtok},
    scene::raw::LlmSpec,
};

pub(super) fn validate_llm(check: &Checker, spec: &LlmSpec) -> Result<LlmConfig, SceneError> {
    let at = |field: &str| vec![Anchor::from("config:"), Anchor::from("llm:"), Anchor::from(field)];
    let mut out = LlmConfig::default();
    if let Some(clock) = spec.clock {
        out.clock = clock;
    }
    if let Some(max) = spec.max_concurrency {
        if max == 0 {
            return Err(check.err("config.llm.max_concurrency", &at("max_concurrency"), "at least one request"));
        }
        out.max_concurrency = max;
    }
    if let Some(max) = spec.max_tokens {
        if max == 0 {
            return Err(check.err("config.llm.max_tokens", &at("max_tokens"), "at least one token"));
        }
        out.max_tokens = max;
    }
    if let Some(retry) = &spec.retry {
        if let Some(attempts) = retry.max_attempts {
            if attempts == 0 {
                return Err(check.err("config.llm.retry.max_attempts", &at("max_attempts"), "at least one attempt"));
            }
            out.retry.max_attempts = attempts;
        }
        out.retry.base_ms = retry.base_ms.unwrap_or(out.retry.base_ms);
        out.retry.max_ms = retry.max_ms.unwrap_or(out.retry.max_ms).max(out.retry.base_ms);
    }
    for (name, endpoint) in &spec.endpoints {
        let path = |field: &str| format!("config.llm.endpoints[{name:?}].{field}");
        let here = |field: &str| vec![Anchor::from("endpoints:"), Anchor::Text(quoted(name)), Anchor::from(field)];
        let url = endpoint.base_url.trim();
        if !(url.starts_with("http://") || url.starts_with("https://")) || url.len() <= "https://".len() {
            return Err(check.err(
                path("base_url"),
                &here("base_url"),
                format!("{url:?} is not an http:// or https:// URL"),
            ));
        }
        if let Some(var) = &endpoint.api_key_env
            && !is_variable_name(var)
        {
            return Err(check.err(
                path("api_key_env"),
                &here("api_key_env"),
                "api_key_env names the environment variable that holds the key (e.g. \"OPENAI_API_KEY\"), \
                 never the key itself",
            ));
        }
        if let Some(rps) = endpoint.requests_per_sec
            && !(rps.is_finite() && rps >= 1.0 / 86_400.0)
        {
            return Err(check.err(
                path("requests_per_sec"),
                &here("requests_per_sec"),
                format!("{rps} is not a rate this world can wait for (at least one request a day)"),
            ));
        }
        // What is not said is as for any server at that address (see Endpoint::at).
        let mut out_endpoint = Endpoint::at(url, endpoint.api_key_env.clone());
        out_endpoint.requests_per_sec = endpoint.requests_per_sec;
        match endpoint.timeout_secs {
            None => {}
            Some(secs) if secs.is_finite() && secs > 0.0 && secs <= 86_400.0 => {
                out_endpoint.timeout_ms = (secs * 1000.0).ceil() as u64;
            }
            Some(secs) => {
                return Err(check.err(path("timeout_secs"), &here("timeout_secs"), format!("{secs} is not a timeout")));
            }
        }
        match endpoint.max_concurrency {
            None => {}
            Some(0) => {
                return Err(check.err(path("max_concurrency"), &here("max_concurrency"), "at least one request"));
            }
            Some(max) => out_endpoint.max_concurrency = Some(max),
        }
        out.endpoints.insert(name.clone(), out_endpoint);
    }
    for (name, model) in &spec.models {
        let path = |field: &str| format!("config.llm.models[{name:?}].{field}");
        let here = |field: &str| vec![Anchor::from("models:"), Anchor::Text(quoted(name)), Anchor::from(field)];
        if !out.endpoints.contains_key(&model.endpoint) {
            return Err(check.err(
                path("endpoint"),
                &here("endpoint"),
                format!(
                    "no endpoint {:?} (known: {})",
                    model.endpoint,
                    out.endpoints.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        let price = |usd: f64, field: &str| {
            micro_per_mtok(usd).ok_or_else(|| {
                check.err(path(field), &here(field), format!("{usd} is not a price (dollars per million tokens ≥ 0)"))
            })
        };
        let model = Model {
            endpoint: model.endpoint.clone(),
            api_name: model.api_name.clone(),
            input_micro_usd_per_mtok: price(model.input_usd_per_mtok, "input_usd_per_mtok")?,
            output_micro_usd_per_mtok: price(model.output_usd_per_mtok, "output_usd_per_mtok")?,
            notional: model.notional,
        };
        out.models.insert(name.clone(), model);
    }
    if let Some(scorer) = &spec.scorer_model {
        out.model(Some(scorer)).map_err(|why| check.err("config.llm.scorer_model", &at("scorer_model"), why))?;
        out.scorer_model = Some(scorer.clone());
    }
    if let Some(usd) = spec.scorer_budget_usd {
        out.scorer_budget_micro_usd = super::usd_to_micro(usd).ok_or_else(|| {
            check.err(
                "config.llm.scorer_budget_usd",
                &at("scorer_budget_usd"),
                format!("{usd} is not an amount of dollars"),
            )
        })?;
    }
    if let Some(default) = &spec.default_model {
        out.model(Some(default)).map_err(|why| check.err("config.llm.default_model", &at("default_model"), why))?;
        out.default_model = Some(default.clone());
    }
    Ok(out)
}
