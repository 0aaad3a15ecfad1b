//! Validating `config.mcp` (servers that can be started, names that make gateway
//! ids) and `config.capabilities` (rules about capabilities that exist).

use super::{Anchor, Checker, SceneError, quoted, seconds, valid_name};
use crate::{
    bridge::mcp::{McpConfig, McpServerConfig},
    scene::raw::{CapabilitiesSpec, McpSpec},
    world::config::CapabilityPolicy,
};

pub(super) fn validate_mcp(check: &Checker, spec: &McpSpec) -> Result<McpConfig, SceneError> {
    let at = |field: &str| vec![Anchor::from("config:"), Anchor::from("mcp:"), Anchor::from(field)];
    let mut out = McpConfig::default();
    if let Some(secs) = spec.call_timeout_secs {
        out.call_timeout_ms = seconds(check, secs, "config.mcp.call_timeout_secs", &at("call_timeout_secs"))?.millis();
    }
    if let Some(secs) = spec.start_timeout_secs {
        out.start_timeout_ms =
            seconds(check, secs, "config.mcp.start_timeout_secs", &at("start_timeout_secs"))?.millis();
    }
    let dir = check.scene.dir();
    for (name, server) in &spec.servers {
        let path = |field: &str| format!("config.mcp.servers[{name:?}].{field}");
        let here = |field: &str| vec![Anchor::from("servers:"), Anchor::Text(quoted(name)), Anchor::from(field)];
        if !valid_name(name) || name.len() > 18 {
            return Err(check.err(
                format!("config.mcp.servers[{name:?}]"),
                &[Anchor::from("servers:"), Anchor::Text(quoted(name))],
                format!(
                    "{name:?} is not a server name: lowercase letters, digits and _, starting with a letter, at \
                     most 18 (its gateway is mcp_{name})"
                ),
            ));
        }
        if server.command.trim().is_empty() {
            return Err(check.err(path("command"), &here("command"), "a server needs a command to start it"));
        }
        // A relative path is the scene's, like code files; a bare name is found on PATH.
        // Both are made absolute: the server starts in `cwd`, not where we are.
        let absolute = |path: std::path::PathBuf| std::path::absolute(&path).unwrap_or(path);
        let command = match dir {
            Some(dir) if server.command.contains('/') && !server.command.starts_with('/') => {
                absolute(dir.join(&server.command)).display().to_string()
            }
            _ => server.command.clone(),
        };
        let cwd = server.cwd.as_ref().map(|cwd| match dir {
            Some(dir) => absolute(dir.join(cwd)),
            None => absolute(cwd.into()),
        });
        if let Some(capability) = &server.capability
            && !valid_capability(capability)
        {
            return Err(check.err(path("capability"), &here("capability"), capability_problem(capability)));
        }
        let config = McpServerConfig {
            command,
            declared_command: server.command.clone(),
            declared_cwd: server.cwd.as_ref().map(Into::into),
            args: server.args.clone(),
            env: server.env.clone(),
            cwd,
            scrip_per_call: server.scrip_per_call.unwrap_or(0),
            micro_usd_per_call: server.micro_usd_per_call.unwrap_or(0),
            capability: server.capability.clone(),
        };
        out.servers.insert(name.clone(), config);
    }
    Ok(out)
}

fn valid_capability(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | ':' | '-' | '.'))
}

fn capability_problem(name: &str) -> String {
    format!("{name:?} is not a capability name: lowercase letters, digits and _ : - . (at most 64)")
}

pub(super) fn validate_capabilities(check: &Checker, spec: &CapabilitiesSpec) -> Result<CapabilityPolicy, SceneError> {
    let at = |field: &str| vec![Anchor::from("config:"), Anchor::from("capabilities:"), Anchor::from(field)];
    for name in spec.grantable.iter().chain(spec.policy.keys()) {
        if !valid_capability(name) {
            return Err(check.err("config.capabilities", &at(&quoted(name)), capability_problem(name)));
        }
    }
    Ok(CapabilityPolicy {
        rules: spec.policy.clone(),
        otherwise: spec.otherwise.unwrap_or_default(),
        grantable: spec.grantable.clone(),
    })
}
