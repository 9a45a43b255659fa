//! The OpenAPI 3.1 document served at `/openapi.json`.

use serde_json::{json, Value};

fn error_responses() -> Value {
    json!({
        "400": {"description": "bad parameter: bad_query, bad_path, bad_key, bad_k, bad_request", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
        "404": {"description": "unknown item", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
        "408": {"description": "the request (body included) was not received within the request deadline; the connection is closed", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
        "413": {"description": "body too large", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
        "415": {"description": "not an image content type", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
        "422": {"description": "not a decodable image, or too many pixels", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
        "503": {"description": "busy: embedding or search queue full; index_down: the index (a Milvus server) cannot be reached now; index_busy: another process writes the index; see Retry-After", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
        "500": {"description": "index_unavailable: the index cannot be read or written (details in the service's log)", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
        "504": {"description": "request took too long"}
    })
}

fn search_params() -> Value {
    json!([
        {"name": "k", "in": "query", "schema": {"type": "integer", "minimum": 1, "default": 10}},
        {"name": "rerank", "in": "query", "description": "re-rank Hamming candidates by float cosine (default: when the index keeps floats)", "schema": {"type": "boolean"}},
        {"name": "user", "in": "query", "description": "opaque user or session id that picks the experiment arm (or the X-Unisight-User header)", "schema": {"type": "string"}},
    ])
}

/// The document.
pub fn document() -> Value {
    let image_body = json!({"required": true, "content": {
        "image/*": {"schema": {"type": "string", "format": "binary"}},
        "multipart/form-data": {"schema": {"type": "object", "required": ["image"], "properties": {"image": {"type": "string", "format": "binary", "description": "the first file part (or the part named image) is the image"}}}}
    }});
    let search_ok = json!({"description": "results, best first", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SearchResponse"}}}});
    let mut search_image_params = search_params();
    search_image_params.as_array_mut().expect("array").push(json!(
        {"name": "embedding", "in": "query", "description": "also return the query's embedding", "schema": {"type": "boolean"}}
    ));
    json!({
        "openapi": "3.1.0",
        "info": {"title": "unisight", "version": env!("CARGO_PKG_VERSION"), "description": "Visual search over one unified, binarized image embedding."},
        "paths": {
            "/v1/search": {"post": {"summary": "Search by an uploaded image (the raw body, or a multipart form)", "parameters": search_image_params, "requestBody": image_body, "responses": merge(json!({"200": search_ok}), error_responses())}},
            "/v1/items/{key}/similar": {"get": {"summary": "More like this: search by an item in the index", "parameters": [{"name": "key", "in": "path", "required": true, "schema": {"type": "string"}}, search_params()[0], search_params()[1], search_params()[2]], "responses": merge(json!({"200": search_ok}), error_responses())}},
            "/v1/events": {"post": {"summary": "A user's action on a shown result, appended to the engagement log", "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Event"}}}}, "responses": {"202": {"description": "logged"}, "200": {"description": "a repeat of a logged action; not logged again"}, "400": {"description": "malformed, not shown, or a dwell without dwell_ms"}, "404": {"description": "unknown or expired request, or no log configured"}}}},
            "/study": {"get": {"summary": "The rater page of the relevance study", "responses": {"200": {"description": "HTML"}}}},
            "/v1/study/next": {"get": {"summary": "The rater's next query with two result lists (sides shuffled, arms hidden)", "security": [{}, {"rater": []}], "parameters": [{"name": "rater", "in": "query", "required": false, "description": "the rater id (required without rater tokens; with them, the token names the rater)", "schema": {"type": "string"}}], "responses": {"200": {"description": "a trial, or {done: true}"}, "404": {"description": "no study configured"}}}},
            "/v1/study/queries/{trial}/image": {"get": {"summary": "A study query's image", "parameters": [{"name": "trial", "in": "path", "required": true, "schema": {"type": "integer"}}], "responses": {"200": {"description": "the image"}, "404": {"description": "unknown trial"}}}},
            "/v1/study/ratings": {"post": {"summary": "Store a rating (synced before the answer)", "security": [{}, {"rater": []}], "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/RatingBody"}}}}, "responses": {"201": {"description": "saved"}, "409": {"description": "this rater already rated this query"}, "404": {"description": "unknown trial or no study"}}}},
            "/v1/embed": {"post": {"summary": "Embed an image", "requestBody": image_body, "responses": merge(json!({"200": {"description": "embedding and hex code", "content": {"application/json": {"schema": {"type": "object", "properties": {"dim": {"type": "integer"}, "embedding": {"type": "array", "items": {"type": "number"}}, "code": {"type": "string"}}}}}}}), error_responses())}},
            "/v1/items": {"post": {"summary": "Add an item (bearer token)", "security": [{"bearer": []}], "parameters": [{"name": "key", "in": "query", "required": true, "schema": {"type": "string"}}, {"name": "path", "in": "query", "schema": {"type": "string"}}], "requestBody": image_body, "responses": merge(json!({"201": {"description": "added and committed"}, "401": {"description": "no or wrong token"}, "403": {"description": "mutations are off (no token configured)"}, "409": {"description": "key exists"}}), error_responses())}},
            "/v1/items/{key}": {
                "get": {"summary": "An item's key and path", "parameters": [{"name": "key", "in": "path", "required": true, "schema": {"type": "string"}}], "responses": merge(json!({"200": {"description": "the item"}}), error_responses())},
                "delete": {"summary": "Remove an item (bearer token)", "security": [{"bearer": []}], "parameters": [{"name": "key", "in": "path", "required": true, "schema": {"type": "string"}}], "responses": merge(json!({"204": {"description": "removed and committed"}, "401": {"description": "no or wrong token"}, "403": {"description": "mutations are off"}, "404": {"description": "no item with this key (also when a concurrent delete removed it first)"}}), error_responses())}
            },
            "/v1/items/{key}/image": {"get": {"summary": "An item's image (when the service has an image root)", "parameters": [{"name": "key", "in": "path", "required": true, "schema": {"type": "string"}}], "responses": {"200": {"description": "the image"}, "404": {"description": "unknown item or no image"}}}},
            "/v1/admin/reload": {"post": {"summary": "Switch to the model and index the deployment file names now (bearer token; `serve --deployment`): built and checked first, then swapped in one step, requests in flight finish on the old ones", "security": [{"bearer": []}], "responses": {"200": {"description": "switched; the arms now served"}, "401": {"description": "no or wrong token"}, "403": {"description": "mutations are off"}, "409": {"description": "reload_failed: the new arms cannot be served (or no deployment file); the old ones still serve"}}}},
            "/healthz": {"get": {"summary": "Liveness", "responses": {"200": {"description": "ok"}}}},
            "/readyz": {"get": {"summary": "Readiness, index size, each arm's backend (embedded or milvus), how it searches (exact or inverted file) and queues (embedding and search)", "responses": {"200": {"description": "ready"}, "503": {"description": "an index cannot be read or reached (a folder gone from disk, a Milvus server down)"}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "text exposition"}}}}
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}, "rater": {"type": "http", "scheme": "bearer", "description": "a rater token of a study with a rater file (`unisight study add-rater`); 401 rater_token without one"}},
            "schemas": {
                "Error": {"type": "object", "required": ["error", "reason"], "properties": {"error": {"type": "string"}, "reason": {"type": "string"}}},
                "Hit": {"type": "object", "properties": {"key": {"type": "string"}, "path": {"type": "string"}, "distance": {"type": "integer", "description": "Hamming distance"}, "score": {"type": ["number", "null"], "description": "cosine after re-ranking"}}},
                "Event": {"type": "object", "required": ["request", "key", "action"], "properties": {"request": {"type": "string"}, "key": {"type": "string"}, "action": {"type": "string", "enum": ["click", "save", "dwell"]}, "dwell_ms": {"type": "integer"}, "client_time_ms": {"type": "integer"}}},
                "RatingBody": {"type": "object", "required": ["trial", "choice"], "properties": {"rater": {"type": "string"}, "trial": {"type": "integer"}, "choice": {"type": "string", "enum": ["left", "right", "tie"]}, "relevant_left": {"type": "array", "items": {"type": "boolean"}}, "relevant_right": {"type": "array", "items": {"type": "boolean"}}}},
                "SearchResponse": {"type": "object", "properties": {"request": {"type": "string", "description": "id for POST /v1/events"}, "arm": {"type": "string", "description": "experiment arm that answered"}, "results": {"type": "array", "items": {"$ref": "#/components/schemas/Hit"}}, "embedding": {"type": "array", "items": {"type": "number"}}, "embed_ms": {"type": ["number", "null"]}, "search_ms": {"type": "number"}}}
            }
        }
    })
}

fn merge(mut a: Value, b: Value) -> Value {
    if let (Some(a), Some(b)) = (a.as_object_mut(), b.as_object()) {
        for (k, v) in b {
            a.entry(k.clone()).or_insert(v.clone());
        }
    }
    a
}
