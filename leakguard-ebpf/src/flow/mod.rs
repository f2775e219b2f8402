//! The flow table (`FLOWS`) behind its hints (`FLOW_HINTS`): every insertion and removal
//! of an entry goes through here, so the hint counters never fall below the entries.
//! `resume` places a segment in its flow; `save` keeps what the next segment needs.

mod resume;
mod table;

pub use resume::{resume, save_flow, KIND_NEW, KIND_NEXT};
pub use table::{get, key, may_have, remove};
