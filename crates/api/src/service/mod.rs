//! The service's adapters that are not request handlers: webhook delivery (outbound HTTP).
//! Live event streams are `crate::event_stream`, below the state that holds their hub.
pub mod webhooks;
