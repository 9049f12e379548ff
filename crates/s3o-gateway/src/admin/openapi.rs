//! The OpenAPI 3 description of the admin API, built from [`super::routes::ROUTES`] so it
//! cannot drift from what is served.

use serde_json::{Map, Value, json};

use super::routes::ROUTES;

fn schema_of(ty: &str) -> Value {
    match ty.trim_end_matches('?') {
        "integer" => json!({"type": "integer", "format": "int64"}),
        "boolean" => json!({"type": "boolean"}),
        "integer[]" => json!({"type": "array", "items": {"type": "integer", "format": "int64"}}),
        _ => json!({"type": "string"}),
    }
}

/// The whole document.
pub(crate) fn document() -> Value {
    let mut paths = Map::new();
    for r in ROUTES {
        let mut params: Vec<Value> = r
            .path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        params.extend(r.query.iter().map(|(name, ty)| {
            json!({"name": name, "in": "query", "required": !ty.ends_with('?'), "schema": schema_of(ty)})
        }));
        // The download answers the object's bytes; every other route answers JSON.
        let content = if r.op == super::routes::Op::DownloadObject {
            json!({"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}})
        } else if matches!(
            r.op,
            super::routes::Op::BackendCopies | super::routes::Op::CleanupQueue
        ) {
            json!({"application/x-ndjson": {"schema": {"type": "string"}}})
        } else {
            json!({"application/json": {"schema": {"type": "object"}}})
        };
        // Signing in needs no authentication.
        let security = if r.op == super::routes::Op::Login {
            json!([])
        } else {
            json!([{"sigv4": []}, {"session": []}])
        };
        let mut op = json!({
            "security": security,
            "summary": r.summary,
            "operationId": format!("{:?}", r.op),
            "parameters": params,
            "responses": {
                r.ok.to_string(): {"description": "success", "content": content},
                "4XX": {"description": "refused: {\"error\": {\"code\", \"message\"}}", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
            },
        });
        if r.op == super::routes::Op::UploadObject {
            op["requestBody"] = json!({
                "required": true,
                "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
            });
        } else if !r.body.is_empty() {
            let mut props = Map::new();
            let mut required = Vec::new();
            for (name, ty) in r.body {
                props.insert((*name).to_owned(), schema_of(ty));
                if !ty.ends_with('?') {
                    required.push(json!(name));
                }
            }
            op["requestBody"] = json!({
                "required": !required.is_empty(),
                "content": {"application/json": {"schema": {"type": "object", "properties": props, "required": required}}},
            });
        }
        let entry = paths
            .entry(r.path.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        entry[r.method.to_ascii_lowercase()] = op;
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "s3o-gateway admin API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Sign every request with AWS SigV4 (service s3) using a key with admin = true, or sign in with POST /admin/api/session and send its cookie, plus the X-CSRF-Token header on every POST, PUT and DELETE.",
        },
        "paths": paths,
        "components": {
            "schemas": {"Error": {"type": "object", "properties": {"error": {"type": "object", "properties": {
                "code": {"type": "string"}, "message": {"type": "string"}}}}}},
            "securitySchemes": {
                "sigv4": {"type": "apiKey", "in": "header", "name": "Authorization",
                    "description": "AWS Signature Version 4"},
                "session": {"type": "apiKey", "in": "cookie", "name": super::session::COOKIE,
                    "description": "A console session from POST /admin/api/session; POST, PUT and DELETE also need its CSRF token in X-CSRF-Token"},
            },
        },
        "security": [{"sigv4": []}, {"session": []}],
    })
}
