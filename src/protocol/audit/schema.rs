//! How audit events are described in the OpenAPI document. An event is its envelope (what
//! [`UnhashedEvent`] holds besides the action and its details, and the hash) together with one
//! of [`AuditAction`]'s typed shapes; a frame of `GET /v1/events` carries one as JSON text.
//! Both schemas are built from the types, so they follow them.

use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::schema::{AllOfBuilder, Object, ObjectBuilder, Schema, Type};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

use super::{Actor, AuditAction, AuditEvent, UnhashedEvent};

/// One Server-Sent Event of `GET /v1/events`, by its fields. On the wire a frame is the lines
/// `event: <action>`, `data: <the event as JSON>` and `id: <seq>`, then a blank line; comment
/// lines keep the connection alive between frames. This type exists for the document only.
#[derive(Debug, Clone, Copy)]
pub struct EventFrame;

/// The fields of an [`UnhashedEvent`] that every event has, whatever its action.
fn envelope() -> Object {
    let mut envelope = match UnhashedEvent::schema() {
        RefOr::T(Schema::Object(object)) => object,
        _ => Object::new(),
    };
    for typed in ["action", "details"] {
        envelope.properties.remove(typed);
        envelope.required.retain(|r| r != typed);
    }
    let hash = ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(
            "SHA-256 (hex) of the RFC 8785 canonical JSON of every other field; prev_hash is the \
             hash of the event before it.",
        ));
    envelope.properties.insert("hash".into(), hash.into());
    envelope.required.push("hash".into());
    envelope.description = Some("What every audit event has, whatever its action.".into());
    envelope
}

impl PartialSchema for AuditEvent {
    fn schema() -> RefOr<Schema> {
        // No field beyond the envelope's and the action's (2020-12 `unevaluatedProperties`,
        // which utoipa has no builder for either).
        let closed = Extensions::from_iter([("unevaluatedProperties", false)]);
        AllOfBuilder::new()
            .description(Some(
                "An audit event: its place in the chain, who did what to which subject, and the \
                 action with its typed details.",
            ))
            .item(envelope())
            .item(Ref::from_schema_name(AuditAction::name()))
            .extensions(Some(closed))
            .into()
    }
}

impl ToSchema for AuditEvent {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((Actor::name().into(), Actor::schema()));
        <Actor as ToSchema>::schemas(schemas);
        schemas.push((AuditAction::name().into(), AuditAction::schema()));
        <AuditAction as ToSchema>::schemas(schemas);
    }
}

/// Every action's name, as [`AuditAction`]'s schema lists them (one tagged shape per action).
pub fn action_names() -> Vec<String> {
    let RefOr::T(Schema::OneOf(one_of)) = AuditAction::schema() else {
        return Vec::new();
    };
    one_of
        .items
        .iter()
        .filter_map(|shape| match shape {
            RefOr::T(Schema::Object(o)) => match o.properties.get("action") {
                Some(RefOr::T(Schema::Object(action))) => action.enum_values.clone(),
                _ => None,
            },
            _ => None,
        })
        .flatten()
        .filter_map(|name| name.as_str().map(str::to_owned))
        .collect()
}

impl PartialSchema for EventFrame {
    fn schema() -> RefOr<Schema> {
        let id = ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some("^[0-9]+$"))
            .description(Some(
                "The audit seq of the event in data (data.seq), in decimal. A client that \
                 reconnects sends the last one it saw as Last-Event-ID and resumes right after \
                 it.",
            ));
        let event = ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(action_names()))
            .description(Some("The event's action (data.action)."));
        // JSON Schema's contentSchema (2020-12 validation, §8.5) says what the JSON text in data
        // holds; utoipa has no builder for it, and an extension map serializes keys as given.
        let content_schema = Extensions::from_iter([(
            "contentSchema",
            serde_json::json!({ "$ref": format!("#/components/schemas/{}", AuditEvent::name()) }),
        )]);
        let data = ObjectBuilder::new()
            .schema_type(Type::String)
            .content_media_type("application/json")
            .extensions(Some(content_schema))
            .description(Some("The AuditEvent, as JSON text on one line."));
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "One Server-Sent Event, by its fields: on the wire the lines `event: <action>`, \
                 `data: <AuditEvent as JSON>` and `id: <seq>`, then a blank line. Comment lines \
                 keep the connection alive between events.",
            ))
            .property("id", id)
            .property("event", event)
            .property("data", data)
            .required("id")
            .required("event")
            .required("data")
            .into()
    }
}

impl ToSchema for EventFrame {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((AuditEvent::name().into(), AuditEvent::schema()));
        <AuditEvent as ToSchema>::schemas(schemas);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_is_its_envelope_and_a_typed_action() {
        let envelope = envelope();
        let mut required = envelope.required.clone();
        required.sort();
        assert_eq!(
            required,
            ["actor", "at", "hash", "prev_hash", "seq", "subject"]
        );
        let names = action_names();
        assert_eq!(names.len(), 30, "{names:?}");
        assert!(names.iter().any(|n| n == "request.submitted"));
    }
}
