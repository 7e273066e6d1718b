//! What unmatched requests get: 405 with `Allow` when the path exists under other methods,
//! else 404. The route table comes from the OpenAPI document, so it is never hand-kept.
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, ResponseError};

use crate::error::ApiError;

/// Path templates (`/v1/accounts/{id}`) and the methods each answers.
#[derive(Clone, Debug, Default)]
pub struct RouteTable {
    routes: Vec<(Vec<Segment>, Vec<&'static str>)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param,
}

impl RouteTable {
    pub fn from_document(doc: &utoipa::openapi::OpenApi) -> Self {
        let mut routes = Vec::new();
        for (path, item) in &doc.paths.paths {
            let segments = path
                .trim_matches('/')
                .split('/')
                .map(|s| {
                    if s.starts_with('{') {
                        Segment::Param
                    } else {
                        Segment::Literal(s.to_owned())
                    }
                })
                .collect();
            let mut methods = Vec::new();
            let ops = [
                ("GET", item.get.is_some()),
                ("POST", item.post.is_some()),
                ("PUT", item.put.is_some()),
                ("PATCH", item.patch.is_some()),
                ("DELETE", item.delete.is_some()),
            ];
            for (name, present) in ops {
                if present {
                    methods.push(name);
                }
            }
            if methods.contains(&"GET") {
                methods.push("HEAD");
            }
            routes.push((segments, methods));
        }
        Self { routes }
    }

    /// The methods allowed on `path`, if any template matches it. Where several do, the most
    /// specific ones (most literal segments) win: `/v1/licenses/bulk` is that route, not a
    /// license id.
    pub fn allowed(&self, path: &str) -> Option<Vec<&'static str>> {
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let literals = |segments: &[Segment]| {
            segments
                .iter()
                .filter(|s| matches!(s, Segment::Literal(_)))
                .count()
        };
        let matching: Vec<_> = self
            .routes
            .iter()
            .filter(|(segments, _)| {
                segments.len() == parts.len()
                    && segments.iter().zip(&parts).all(|(seg, part)| match seg {
                        Segment::Param => !part.is_empty(),
                        Segment::Literal(lit) => lit == part,
                    })
            })
            .collect();
        let best = matching.iter().map(|(s, _)| literals(s)).max()?;
        let mut found: Vec<&'static str> = Vec::new();
        for (segments, methods) in matching {
            if literals(segments) == best {
                found.extend(
                    methods
                        .iter()
                        .filter(|m| !found.contains(m))
                        .collect::<Vec<_>>(),
                );
            }
        }
        (!found.is_empty()).then_some(found)
    }
}

fn method_not_allowed(methods: &[&str]) -> HttpResponse {
    let mut res = ApiError::MethodNotAllowed.error_response();
    if let Ok(value) = header::HeaderValue::from_str(&methods.join(", ")) {
        res.headers_mut().insert(header::ALLOW, value);
    }
    res
}

/// The answer to a path whose `{id}` does not parse: 404 like an unknown id, unless the path
/// is a more specific route (`/v1/licenses/bulk`) that a parameterised one
/// (`/v1/licenses/{id}`) shadowed for a method it does not allow: 405.
pub fn unparsable_path(req: &HttpRequest) -> HttpResponse {
    let table = req.app_data::<actix_web::web::Data<RouteTable>>();
    match table.and_then(|t| t.allowed(req.path())) {
        Some(methods) if !methods.contains(&req.method().as_str()) => method_not_allowed(&methods),
        _ => ApiError::not_found().error_response(),
    }
}

/// The app's default service.
pub async fn not_matched(req: HttpRequest) -> HttpResponse {
    let table = req.app_data::<actix_web::web::Data<RouteTable>>();
    match table.and_then(|t| t.allowed(req.path())) {
        Some(methods) => method_not_allowed(&methods),
        None => ApiError::not_found().error_response(),
    }
}
