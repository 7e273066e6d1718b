//! The service's adapters that are not request handlers: webhook delivery (outbound HTTP) and
//! live event streams (server-sent events).
pub mod event_stream;
pub mod webhooks;
