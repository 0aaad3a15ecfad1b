//! Argument validation: each executable's tool schemas, compiled once.
//!
//! Observers compile an [`Interface`]'s `inputSchema`s when it is inserted and drop
//! them when it goes, so an invoke only runs a compiled validator. Errors name the
//! failing field by its path in the arguments (`args.limit: -1 is less than the
//! minimum of 0`).

use std::sync::Arc;

use bevy_ecs::prelude::*;
use bevy_platform::collections::HashMap;
use serde_json::Value;

use super::KernelError;
use crate::world::components::Interface;

/// Compiled validators by entity, then by method name.
#[derive(Resource, Default)]
pub struct Schemas {
    by_entity: HashMap<Entity, Arc<Vec<(String, jsonschema::Validator)>>>,
}

/// Compiles a tool's schema, or says why it is not a schema.
pub fn compile(schema: &Value) -> Result<jsonschema::Validator, String> {
    jsonschema::validator_for(schema).map_err(|e| e.to_string())
}

impl Schemas {
    /// Checks `args` against the schema of `method` of the artifact on `entity`.
    pub fn check(&self, entity: Entity, method: &str, args: &Value) -> Result<(), KernelError> {
        let Some(validator) =
            self.by_entity.get(&entity).and_then(|tools| tools.iter().find(|(name, _)| name == method)).map(|(_, v)| v)
        else {
            return Ok(());
        };
        let Some(error) = validator.iter_errors(args).next() else { return Ok(()) };
        let path = error.instance_path().to_string();
        let field = if path.is_empty() { "args".to_owned() } else { format!("args{}", path.replace('/', ".")) };
        Err(KernelError::invalid(format!("{field}: {error}")).with("field", field).with("method", method))
    }
}

pub(crate) fn plugin(app: &mut bevy_app::App) {
    app.init_resource::<Schemas>().add_observer(compile_schemas).add_observer(drop_schemas);
}

fn compile_schemas(insert: On<Insert<Interface>>, interfaces: Query<&Interface>, mut schemas: ResMut<Schemas>) {
    let Ok(interface) = interfaces.get(insert.entity) else { return };
    // Interfaces are checked before they are written, so every schema compiles; one
    // that somehow does not simply goes unchecked.
    let tools = interface
        .tools
        .iter()
        .filter_map(|tool| compile(&tool.input_schema).ok().map(|v| (tool.name.clone(), v)))
        .collect();
    schemas.by_entity.insert(insert.entity, Arc::new(tools));
}

fn drop_schemas(discard: On<Discard<Interface>>, mut schemas: ResMut<Schemas>) {
    schemas.by_entity.remove(&discard.entity);
}
