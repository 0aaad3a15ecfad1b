//! JSON text straight into JavaScript values, in a worker.
//!
//! Everything the host sends code — a step's view, a call's arguments, the answer to
//! a host call — crosses as JSON text. Parsing it into a `serde_json::Value` and then
//! converting that with `JsValue::from_json` built every object twice (a `BTreeMap`,
//! then the JS object) and threw the first away; for a small step that was the
//! largest part of a worker's time. This builds the JS values as the text is read.
//!
//! The values are the ones `from_json` gives: whole numbers in `i32` range as
//! integers, others as doubles; an object's properties in key order (what the map
//! in between used to sort them into), a repeated key's last value winning. Code
//! that lists an object's keys sees the same order as before.

use std::fmt;

use boa_engine::{
    Context, JsString, JsValue, object::ObjectInitializer, object::builtins::JsArray, property::Attribute,
};
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// Parses `text` into a JS value built in `context`.
pub fn parse(text: &str, context: &mut Context) -> Result<JsValue, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let value = Seed(context).deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(value)
}

/// Builds one value (and everything in it) in the context it holds.
struct Seed<'a>(&'a mut Context);

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = JsValue;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<JsValue, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = JsValue;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<JsValue, E> {
        Ok(JsValue::null())
    }

    fn visit_bool<E>(self, b: bool) -> Result<JsValue, E> {
        Ok(JsValue::new(b))
    }

    fn visit_i64<E>(self, n: i64) -> Result<JsValue, E> {
        Ok(i32::try_from(n).map_or_else(|_| JsValue::new(n as f64), JsValue::new))
    }

    fn visit_u64<E>(self, n: u64) -> Result<JsValue, E> {
        Ok(i32::try_from(n).map_or_else(|_| JsValue::new(n as f64), JsValue::new))
    }

    fn visit_f64<E>(self, x: f64) -> Result<JsValue, E> {
        Ok(JsValue::new(x))
    }

    fn visit_str<E>(self, s: &str) -> Result<JsValue, E> {
        Ok(JsString::from(s).into())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<JsValue, A::Error> {
        let context = self.0;
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element_seed(Seed(context))? {
            items.push(item);
        }
        Ok(JsArray::from_iter(items, context).into())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JsValue, A::Error> {
        let context = self.0;
        let mut fields: Vec<(String, JsValue)> = Vec::with_capacity(map.size_hint().unwrap_or(0));
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value_seed(Seed(context))?;
            fields.push((key, value));
        }
        // Key order, the last of a repeated key: a stable sort keeps repeats in the
        // order they came, and only the last of each run is kept.
        fields.sort_by(|a, b| a.0.cmp(&b.0));
        let mut object = ObjectInitializer::new(context);
        let mut fields = fields.into_iter().peekable();
        while let Some((key, value)) = fields.next() {
            if fields.peek().is_some_and(|(next, _)| *next == key) {
                continue;
            }
            object.property(JsString::from(key.as_str()), value, Attribute::all());
        }
        Ok(object.build().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The old way: through a `serde_json::Value`.
    fn via_value(text: &str, context: &mut Context) -> JsValue {
        let value: serde_json::Value = serde_json::from_str(text).unwrap();
        JsValue::from_json(&value, context).unwrap()
    }

    /// What code sees of a value: `JSON.stringify` keeps property order.
    fn shown(value: &JsValue, context: &mut Context) -> String {
        let json = context.global_object().get(JsString::from("JSON"), context).unwrap();
        let stringify = json.as_object().unwrap().get(JsString::from("stringify"), context).unwrap();
        let text = stringify.as_callable().unwrap().call(&JsValue::undefined(), &[value.clone()], context).unwrap();
        text.to_string(context).unwrap().to_std_string_escaped()
    }

    #[test]
    fn values_are_the_ones_from_json_gives() {
        let mut context = Context::default();
        for text in [
            r#"{"b": 1, "a": [1, 2.5, -3, 4294967296, 2147483648, -2147483649, 1e300, 0.0], "c": {"z": null, "y": true}}"#,
            r#"{"x": 1, "x": 2, "w": "é\n\"", "0": "index", "10": "ten", "9": "nine"}"#,
            r#"[[], {}, "", [[[{"deep": [false]}]]]]"#,
            r#"{"steps": 3, "self": "alice", "events": [{"type": "T", "payload": {"to": "bob", "amount": 2}}]}"#,
            "null",
            "-0",
            "18446744073709551615",
        ] {
            let direct = parse(text, &mut context).unwrap();
            let old = via_value(text, &mut context);
            assert_eq!(shown(&direct, &mut context), shown(&old, &mut context), "{text}");
            assert_eq!(direct.to_json(&mut context).unwrap(), old.to_json(&mut context).unwrap(), "{text}");
            let integer = |v: &JsValue| matches!(v.variant(), boa_engine::JsVariant::Integer32(_));
            assert_eq!(integer(&direct), integer(&old), "{text}");
        }
    }

    #[test]
    fn bad_text_is_an_error() {
        let mut context = Context::default();
        for text in ["", "{", r#"{"a": }"#, "[1,]", "1 2", &"[".repeat(200)] {
            assert!(parse(text, &mut context).is_err(), "{text}");
        }
    }
}
